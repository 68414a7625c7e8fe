"""Production monitoring: the training-time reference profile, drift (PSI) and the retrain trigger.

Everything here is numpy + standard library only, so the drift job runs in the serving image.
"""
