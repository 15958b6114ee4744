"""The example contract shared by ExampleGen, Transform, the model and the report.

Every tf.Example written by ExampleGen carries these raw features. Transform
turns IMAGE into IMAGE_XF and LABEL into LABEL_XF; the serving signature takes
only IMAGE (raw JPEG or PNG bytes).
"""
IMAGE = "image"                 # bytes: the encoded JPEG / PNG
LABEL = "label"                 # bytes: lion | tiger | bear
HEIGHT = "height"               # int64, pixels, after EXIF orientation
WIDTH = "width"                 # int64
ASPECT_RATIO = "aspect_ratio"   # float: width / height
BRIGHTNESS = "brightness"       # float: mean luminance in [0, 1]
PIXEL_AREA = "pixel_area"       # int64: width * height
RMS_CONTRAST = "rms_contrast"   # float: standard deviation of luminance, in [0, 0.5]
MEAN_RED = "mean_red"           # float: mean of each channel, in [0, 1]
MEAN_GREEN = "mean_green"
MEAN_BLUE = "mean_blue"
SHARPNESS = "sharpness"         # float: variance of the luminance Laplacian (focus blur lowers it)
SOURCE = "source"               # bytes: corpus | toto
NIGHT = "night"                 # bytes: YYYY-MM-DD of the Toto night, "corpus" otherwise
CAPTURE_HOUR = "capture_hour"   # int64: 0-23, -1 when the capture time is unknown
ORIENTATION = "orientation"     # bytes: landscape | portrait | square

BYTES_FEATURES = (IMAGE, LABEL, SOURCE, NIGHT, ORIENTATION)
INT_FEATURES = (HEIGHT, WIDTH, CAPTURE_HOUR, PIXEL_AREA)
FLOAT_FEATURES = (ASPECT_RATIO, BRIGHTNESS, RMS_CONTRAST, MEAN_RED, MEAN_GREEN, MEAN_BLUE,
                  SHARPNESS)

# What skew and drift are measured on: per-image properties computed once, at
# ExampleGen time (raw bytes mean nothing to a two-sample test).
COMPARED_NUMERIC = (ASPECT_RATIO, PIXEL_AREA, BRIGHTNESS, RMS_CONTRAST, MEAN_RED, MEAN_GREEN,
                    MEAN_BLUE, SHARPNESS)
COMPARED_CATEGORICAL = (LABEL,)

# The serving model's outputs, compared for prediction drift (no labels needed).
PREDICTED_CLASS = "predicted_class"   # argmax of the scores
CONFIDENCE = "confidence"             # the top score

IMAGE_XF = "image_xf"           # float32 [size, size, 3] in [0, 1]
LABEL_XF = "label_xf"           # int64 index into config.data.labels, -1 if unknown
WEIGHT_XF = "weight_xf"         # float32 evaluation weight: 0 for an unknown label

# A span artifact's splits (components/spans.span_splits); a night trains on every span
# before it whole, plus tonight's train split, and evaluates on tonight's eval split.
TRAIN = "train"                 # a night's: the corpus + every Toto night before tonight
EVAL = "eval"                   # tonight's Toto night (or a hash split of tonight's span)
PREVIOUS = "previous"           # the night's drift baseline: the last Toto night before it
SPAN_SPLITS = (TRAIN, EVAL)
SPLITS = (TRAIN, EVAL, PREVIOUS)   # a night's (split_counts, the night's feature summary)


def orientation(width: int, height: int) -> str:
    if width > height:
        return "landscape"
    if height > width:
        return "portrait"
    return "square"
