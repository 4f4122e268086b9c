from .bounding_box import FLIP_LEFT_RIGHT, FLIP_TOP_BOTTOM, BoxList, cat_boxlist, remap_relations
from .boxlist_ops import box_iou, box_iou_np, boxlist_iou, union_boxes
from .image_list import ImageList, to_image_list

__all__ = ["BoxList", "cat_boxlist", "remap_relations", "FLIP_LEFT_RIGHT", "FLIP_TOP_BOTTOM", "box_iou",
           "box_iou_np", "boxlist_iou", "union_boxes", "ImageList", "to_image_list"]
