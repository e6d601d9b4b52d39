"""The pipeline's stages; each module has a pure core function and a thin ``main()``."""
