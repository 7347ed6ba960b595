# Lesion stream: automatic lesion segmentation (FLAIR + T1w), manual masks,
# volume, side and corticospinal-tract lesion load. (Being built: issue 4.)
