"""The model registry on a real git repository with GTO tags and real DVC outputs.

One copy of the reproduced project gets three commits: ``base`` (the default params), ``strict``
(``evaluate.min_accuracy: 1.0``: same model, marked not promotable) and ``small``
(``train.random_forest.n_estimators: 50``, the HEAD and the workspace). The ``registry``
fixture then drives the lifecycle through the ``mlrepo registry`` command line:
base -> v0.0.1, strict -> v0.0.2, small -> v0.1.0 (--bump minor); v0.1.0 to staging, staging
to production; v0.0.1 back to staging (the challenger).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import stat
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import joblib
import pytest
import yaml
from dvc_harness import Origin, Repo, copy_workspace

from mlrepo.bundle import MODEL_FILES, ModelIntegrityError
from mlrepo.cli import main
from mlrepo.errors import MlrepoError
from mlrepo.registry import PromotionRefused, promote, resolve
from mlrepo.registry.lifecycle import gate_failure
from mlrepo.registry.snapshot import Snapshot

pytestmark = pytest.mark.dvc

MODEL = MODEL_FILES["pipeline"]


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class Project:
    repo: Repo
    base: str
    strict: str
    small: str

    @property
    def root(self) -> Path:
        return self.repo.root

    def cli(self, *args: str) -> Run:
        """``mlrepo registry ARGS -C ROOT``, in this process, with its exit code and output."""
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["registry", *args, "-C", str(self.root)])
        return Run(code, out.getvalue(), err.getvalue())

    def model_md5(self, sha: str) -> str:
        lock = yaml.safe_load(self.repo.git("show", f"{sha}:dvc.lock").stdout)
        return str(next(o["md5"] for o in lock["stages"]["train"]["outs"] if o["path"] == MODEL))

    def cache_file(self, md5: str) -> Path:
        return self.root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]

    def tags(self) -> list[str]:
        return self.repo.git("tag", "--list").stdout.split()


def head(repo: Repo) -> str:
    return repo.git("rev-parse", "HEAD").stdout.strip()


@pytest.fixture(scope="module")
def project(origin: Origin, tmp_path_factory: pytest.TempPathFactory) -> Project:
    repo = copy_workspace(origin.repo, tmp_path_factory.mktemp("registry") / "repo")
    base = head(repo)
    repo.set_params({"evaluate.min_accuracy": 1.0})
    repo.dvc("repro")
    repo.commit("Quality gate at 1.0: nothing passes")
    strict = head(repo)
    repo.set_params({"evaluate.min_accuracy": 0.85, "train.random_forest.n_estimators": 50})
    repo.dvc("repro")
    repo.commit("A smaller forest")
    assert not repo.git("status", "--porcelain").stdout.strip()
    return Project(repo, base, strict, head(repo))


@pytest.fixture(scope="module")
def registry(project: Project) -> dict[str, Run]:
    """The lifecycle through the command line, each step's result by name (asserted below)."""
    steps = {
        "show before any promotion": ("show",),
        "register base": ("register", "--rev", project.base),
        "register strict": ("register", "--rev", project.strict),
        "register small": ("register", "--bump", "minor"),
        "promote latest to staging": ("promote", "--stage", "staging"),
        "promote staging to production": ("promote", "--stage", "production", "model#staging"),
        "promote v0.0.1 to challenger": ("promote", "--stage", "challenger", "v0.0.1"),
    }
    return {name: project.cli(*args) for name, args in steps.items()}


@contextmanager
def replaced(path: Path, data: bytes) -> Iterator[None]:
    """Overwrite ``path`` (even a read-only DVC cache file) and restore it afterwards."""
    original, mode = path.read_bytes(), stat.S_IMODE(path.stat().st_mode)
    path.chmod(mode | stat.S_IWUSR)
    path.write_bytes(data)
    try:
        yield
    finally:
        path.write_bytes(original)
        path.chmod(mode)


@contextmanager
def moved_away(path: Path) -> Iterator[None]:
    aside = path.with_name(path.name + ".aside")
    path.rename(aside)
    try:
        yield
    finally:
        aside.rename(path)


def booby_trapped_pickle(marker: Path) -> bytes:
    """A pickle that creates ``marker`` when it is loaded: proof of deserialization."""

    class Trap:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return os.mkdir, (str(marker),)

    return pickle.dumps(Trap())


def test_lifecycle_creates_annotated_gto_tags(project: Project, registry: dict[str, Run]) -> None:
    failed = {name: run for name, run in registry.items() if name != "show before any promotion"}
    assert all(run.code == 0 for run in failed.values()), failed
    assert "registered model@v0.0.1" in registry["register base"].out
    assert "registered model@v0.1.0" in registry["register small"].out
    tags = project.tags()
    assert {"model@v0.0.1", "model@v0.0.2", "model@v0.1.0"} <= set(tags)
    assert sum(t.startswith("model#staging#") for t in tags) == 2
    assert sum(t.startswith("model#production#") for t in tags) == 1
    for tag in tags:
        assert project.repo.git("cat-file", "-t", tag).stdout.strip() == "tag", f"{tag} annotated"
    assert project.repo.git("rev-parse", "model@v0.1.0^{commit}").stdout.strip() == project.small


def test_register_notes_a_version_that_cannot_be_promoted(registry: dict[str, Run]) -> None:
    out = registry["register strict"].out
    assert "registered model@v0.0.2" in out
    assert "not promotable" in out and "evaluate.min_accuracy" in out
    assert "same model bytes" in out and "v0.0.1" in out


def test_every_kind_of_reference_yields_the_same_verified_bytes(
    project: Project, registry: dict[str, Run]
) -> None:
    workspace_bytes = (project.root / MODEL).read_bytes()
    assert hashlib.md5(workspace_bytes).hexdigest() == project.model_md5(project.small)
    registered = [None, "model#production", "production", "champion", "model@v0.1.0", "v0.1.0"]
    revisions = ["latest", project.small, project.small[:8], "HEAD", "model@v0.1.0"]
    for ref in [*registered, *revisions, "workspace", str(project.root)]:
        bundle = resolve(ref, project.root)
        assert bundle.files["pipeline"] == workspace_bytes, ref
        assert bundle.metadata == json.loads((project.root / MODEL_FILES["metadata"]).read_bytes())
        assert "accuracy" in bundle.metrics["evaluate"], ref
        if ref in registered:
            assert (bundle.version, bundle.stage, bundle.rev) == (
                "v0.1.0",
                "production",
                project.small,
            )
    pipeline = joblib.load(io.BytesIO(resolve("champion", project.root).files["pipeline"]))
    assert hasattr(pipeline, "predict_proba")


def test_challenger_comes_from_the_dvc_cache(project: Project, registry: dict[str, Run]) -> None:
    bundle = resolve("challenger", project.root)
    assert (bundle.version, bundle.stage, bundle.rev) == ("v0.0.1", "staging", project.base)
    md5 = hashlib.md5(bundle.files["pipeline"]).hexdigest()
    assert md5 == project.model_md5(project.base) != project.model_md5(project.small)


def test_promotion_below_min_accuracy_is_refused_naming_the_gate(
    project: Project, registry: dict[str, Run]
) -> None:
    before = project.tags()
    run = project.cli("promote", "--stage", "production", "v0.0.2")
    assert run.code == 2 and run.out == ""
    assert run.err.count("\n") == 1, run.err
    assert "refusing to promote" in run.err and "gate 'evaluate.min_accuracy' failed" in run.err
    assert "< evaluate.min_accuracy 1.00" in run.err
    with pytest.raises(PromotionRefused, match=r"evaluate\.min_accuracy"):
        promote("staging", "model@v0.0.2", project.root)
    assert project.tags() == before
    show = project.cli("show", "v0.0.2")
    assert "promotable  no: gate 'evaluate.min_accuracy' failed" in show.out


def test_tampered_cache_file_is_refused_before_unpickling(
    project: Project, registry: dict[str, Run], tmp_path: Path
) -> None:
    trap = booby_trapped_pickle(tmp_path / "unpickled")
    joblib.load(io.BytesIO(booby_trapped_pickle(tmp_path / "trap works")))
    assert (tmp_path / "trap works").is_dir(), "the trap must fire when loaded"

    cache = project.cache_file(project.model_md5(project.small))
    assert not cache.samefile(project.root / MODEL), "the workspace must be a copy of the cache"
    with replaced(cache, trap):
        for ref in ("champion", "model@v0.1.0", project.small):
            with pytest.raises(ModelIntegrityError) as caught:
                resolve(ref, project.root)
            assert f"dvc.lock records {project.model_md5(project.small)}" in str(caught.value)
            assert "not loaded" in str(caught.value)
        run = project.cli("show", "champion")  # show reads no model bytes: still works
        assert run.code == 0
    assert not (tmp_path / "unpickled").exists()
    resolve("champion", project.root)


def test_tampered_workspace_file_is_refused_before_unpickling(
    project: Project, registry: dict[str, Run], tmp_path: Path
) -> None:
    with replaced(project.root / MODEL, booby_trapped_pickle(tmp_path / "unpickled")):
        for ref in ("workspace", str(project.root)):
            with pytest.raises(ModelIntegrityError, match=r"has md5 \w+ but dvc\.lock records"):
                resolve(ref, project.root)
        assert resolve("champion", project.root).version == "v0.1.0"  # the cache is intact
    assert not (tmp_path / "unpickled").exists()


def test_without_the_cache_a_matching_workspace_copy_is_used(
    project: Project, registry: dict[str, Run]
) -> None:
    with moved_away(project.cache_file(project.model_md5(project.small))):
        assert resolve("champion", project.root).version == "v0.1.0"
    missing = pytest.raises(MlrepoError, match="neither in the DVC cache nor in the workspace")
    with moved_away(project.cache_file(project.model_md5(project.base))), missing:
        resolve("challenger", project.root)


def test_list_and_show(project: Project, registry: dict[str, Run]) -> None:
    listing = project.cli("list")
    lines = listing.out.splitlines()
    assert lines[0].split()[:3] == ["version", "stages", "commit"]
    assert lines[1].split()[:3] == ["v0.1.0", "production", project.small[:7]]
    assert lines[2].split()[:2] == ["v0.0.2", "-"] and lines[2].split()[-1] == "no"
    assert lines[3].split()[:3] == ["v0.0.1", "staging", project.base[:7]]
    assert lines[4] == "champion = v0.1.0 (production), challenger = v0.0.1 (staging)"
    rows = json.loads(project.cli("list", "--json").out)
    assert [(r["version"], r["promotable"]) for r in rows] == [
        ("v0.1.0", True),
        ("v0.0.2", False),
        ("v0.0.1", True),
    ]
    show = project.cli("show").out
    assert show.startswith("model@v0.1.0: production (champion)")
    assert project.small in show and "promotable  yes" in show
    assert "train.random_forest.n_estimators      50" in show
    info = json.loads(project.cli("show", "challenger", "--json").out)
    accuracy = json.loads(project.repo.git("show", f"{project.base}:metrics/evaluate.json").stdout)
    assert info["version"] == "v0.0.1" and info["metrics"]["accuracy"] == accuracy["accuracy"]
    assert info["params"]["train.random_forest.n_estimators"] == 100


def test_compare_shows_both_versions_side_by_side(
    project: Project, registry: dict[str, Run]
) -> None:
    run = project.cli("compare", "v0.0.1", "champion")
    assert run.code == 0, run.err
    header, *rows = run.out.splitlines()
    assert "A: v0.0.1" in header and "B: champion (model@v0.1.0" in header
    by_name = {row.split()[0]: row.split()[1:] for row in rows if row.strip()}
    assert by_name["train.random_forest.n_estimators"] == ["100", "50"]
    assert "accuracy" in by_name and "roc_auc" in by_name
    assert "evaluate.min_accuracy" not in by_name, "only differing params by default"
    data = json.loads(project.cli("compare", "v0.0.1", "champion", "--json").out)
    assert data["params_differ"] == ["train.random_forest.n_estimators"]
    assert data["a"]["version"] == "v0.0.1" and data["b"]["version"] == "v0.1.0"
    assert "evaluate.min_accuracy" in project.cli("compare", "v0.0.1", "v0.0.2", "--all").out


def test_history_lists_registrations_and_promotions(
    project: Project, registry: dict[str, Run]
) -> None:
    events = json.loads(project.cli("history", "--json").out)
    assert sorted((e["event"], e["version"], e["stage"]) for e in events) == [
        ("assignment", "v0.0.1", "staging"),
        ("assignment", "v0.1.0", "production"),
        ("assignment", "v0.1.0", "staging"),
        ("registration", "v0.0.1", None),
        ("registration", "v0.0.2", None),
        ("registration", "v0.1.0", None),
    ]
    assert events[0]["tag"].startswith("model#staging#"), "newest first"
    text = project.cli("history").out
    assert "model@v0.0.1" in text and "model#production#" in text


def test_mistakes_are_one_line_errors(project: Project, registry: dict[str, Run]) -> None:
    before = registry["show before any promotion"]
    assert before.code == 2 and "no model is in production" in before.err
    assert "mlrepo registry register" in before.err
    cases = {
        ("show", "v9.9.9"): "no registered version 'v9.9.9'. Registered: v0.1.0 (production)",
        ("show", "no-such-thing"): "unknown model reference 'no-such-thing'",
        ("register", "--rev", project.small): "already registered",
        ("promote", "--stage", "production", "HEAD~1"): "HEAD~1 (model@v0.0.2",
        ("promote", "--stage", "staging", "workspace"): "not a registered version",
        ("promote", "--stage", "production", "champion"): "already in production",
    }
    for args, expected in cases.items():
        run = project.cli(*args)
        assert run.code == 2 and expected in run.err, (args, run.err)
        assert run.err.startswith("error: ") and run.err.count("\n") == 1, run.err


def test_dvc_reads_the_artifacts_section_and_the_tags(
    project: Project, registry: dict[str, Run], tmp_path: Path
) -> None:
    assert "up to date" in project.repo.dvc("status").output
    got = tmp_path / "model.joblib"
    project.repo.dvc("artifacts", "get", ".", "model", "--stage", "production", "-o", got)
    assert got.read_bytes() == resolve("champion", project.root).files["pipeline"]


def test_a_deployed_copy_without_git_resolves_by_path(project: Project, tmp_path: Path) -> None:
    deployed = tmp_path / "deployed"
    for name in ("dvc.yaml", "dvc.lock", *MODEL_FILES.values(), "metrics/evaluate.json"):
        if (project.root / name).exists():
            (deployed / name).parent.mkdir(parents=True, exist_ok=True)
            (deployed / name).write_bytes((project.root / name).read_bytes())
    expected = (project.root / MODEL).read_bytes()
    assert resolve(str(deployed), deployed).files["pipeline"] == expected
    assert resolve("workspace", deployed).files["pipeline"] == expected
    with pytest.raises(MlrepoError, match="not a git repository"):
        resolve(None, deployed)


def test_a_hand_edited_evaluation_fails_the_gate(
    project: Project, registry: dict[str, Run]
) -> None:
    path = project.root / "metrics" / "evaluate.json"
    scores = json.loads(path.read_text("utf-8"))
    forged = json.dumps({**scores, "accuracy": 0.999, "promotable": True}).encode()
    assert gate_failure(Snapshot(project.root)) is None
    with replaced(path, forged):
        failure = gate_failure(Snapshot(project.root))
        assert failure is not None and failure.gate == "evaluated"
        assert "is not the one dvc.lock recorded" in failure.reason
        assert "promotable  no: gate 'evaluated' failed" in project.cli("show", "workspace").out
