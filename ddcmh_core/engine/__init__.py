"""The training engine of the deep methods.

Networks, backbones, images, weights, trainer, checkpoints, devices and the validation hold-out.
"""
