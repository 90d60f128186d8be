"""Scale-out on Ray Serve: the same farm.toml, one deployment per model (`modelfarm serve --ray`).

Only `modelfarm serve --ray` imports this package; the embedded gateway never imports Ray.
"""
