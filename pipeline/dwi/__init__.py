"""Diffusion MRI stream: gradients, denoising, motion/eddy-current correction,
tensor metrics and corticospinal-tract / normal-appearing white-matter integrity."""
