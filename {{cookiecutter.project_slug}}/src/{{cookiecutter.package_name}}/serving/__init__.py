"""The prediction service: schema-driven decoding, ONNX Runtime inference, FastAPI app.

Nothing in this package imports pandas or scikit-learn: ``features.json`` and ``model.onnx``
are all it needs at run time.
"""
