"""Region proposal network from torchvision parts, configured by SGB's ``MODEL.RPN.*`` keys."""
from .rpn import RPNHeadWithMidChannels, build_anchor_generator, build_rpn

__all__ = ["build_rpn", "build_anchor_generator", "RPNHeadWithMidChannels"]
