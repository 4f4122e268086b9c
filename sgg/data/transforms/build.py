from . import transforms as T


def build_transforms(cfg, is_train: bool = True) -> T.Compose:
    """Resize, (train: flip, colour jitter), to tensor, normalise, all from ``INPUT.*``."""
    if is_train:
        min_size, max_size, flip_prob = cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN, cfg.INPUT.FLIP_PROB_TRAIN
    else:
        min_size, max_size, flip_prob = cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, 0.0
    steps = [
        T.ColorJitter(cfg.INPUT.BRIGHTNESS, cfg.INPUT.CONTRAST, cfg.INPUT.SATURATION, cfg.INPUT.HUE) if is_train
        else None,
        T.Resize(min_size, max_size),
        T.RandomHorizontalFlip(flip_prob),
        T.ToTensor(),
        T.Normalize(cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD, cfg.INPUT.TO_BGR255),
    ]
    return T.Compose([s for s in steps if s is not None])
