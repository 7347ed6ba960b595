"""Anatomy stream: bias correction, brain extraction, registration to MNI."""
