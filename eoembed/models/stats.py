"""Published normalisation statistics used by the model zoo.

SSL4EO-S12 v1.1 statistics (S1 GRD in dB; S2 digital numbers that INCLUDE the +1000 ESA offset of
processing baseline 04.00). The Embed2Scale / SSL4EO-S12-downstream files have NO offset, so a model normalised
with these statistics must add 1000 to every S2 band first (``Normalisation.offset``).
Source: SSL4EO-S12 v1.1 release, as copied in the Embed2Scale challenge supplement (``challenge_dataset.py``).
"""
from __future__ import annotations

from eoembed.data.bands import S1_BANDS, S2L1C_BANDS, S2L2A_BANDS

S1GRD_MEAN = dict(zip(S1_BANDS, (-12.577, -20.265)))
S1GRD_STD = dict(zip(S1_BANDS, (5.179, 5.872)))

S2L1C_MEAN = dict(zip(S2L1C_BANDS, (
    2607.345, 2393.068, 2320.225, 2373.963, 2562.536, 3110.071, 3392.832, 3321.154, 3583.77, 1838.712,
    1021.753, 3205.112, 2545.798)))
S2L1C_STD = dict(zip(S2L1C_BANDS, (
    786.523, 849.702, 875.318, 1143.578, 1126.248, 1161.98, 1273.505, 1246.79, 1342.755, 576.795,
    45.626, 1340.347, 1145.036)))

S2L2A_MEAN = dict(zip(S2L2A_BANDS, (
    1793.243, 1924.863, 2184.553, 2340.936, 2671.402, 3240.082, 3468.412, 3563.244, 3627.704, 3711.071,
    3416.714, 2849.625)))
S2L2A_STD = dict(zip(S2L2A_BANDS, (
    1160.144, 1201.092, 1219.943, 1397.225, 1400.035, 1373.136, 1429.17, 1485.025, 1447.836, 1652.703,
    1471.002, 1365.307)))

#: ESA offset added to S2 DNs since processing baseline 04.00 (2022-01-25); absent from the challenge files.
S2_OFFSET = 1000.0

#: Prithvi-EO-2.0 pre-training statistics (HLS surface reflectance x 10000, no offset), terratorch
#: ``PRITHVI_V2_MEAN/STD``, band order Blue, Green, Red, NIR-narrow, SWIR1, SWIR2.
PRITHVI_V2_MEAN = (1087.0, 1342.0, 1433.0, 2734.0, 1958.0, 1363.0)
PRITHVI_V2_STD = (2248.0, 2179.0, 2178.0, 1850.0, 1242.0, 1049.0)

#: ImageNet RGB statistics (Scale-MAE fMoW-RGB weights expect uint8 RGB / 255 then these).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def ssl4eo_stats(keys: list[str] | tuple[str, ...]) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(mean, std, offset) dicts for band keys under SSL4EO-S12 v1.1 statistics (+1000 offset on S2)."""
    mean, std, offset = {}, {}, {}
    tables = {"s1": (S1GRD_MEAN, S1GRD_STD, 0.0), "s2l1c": (S2L1C_MEAN, S2L1C_STD, S2_OFFSET),
              "s2l2a": (S2L2A_MEAN, S2L2A_STD, S2_OFFSET)}
    for key in keys:
        mod, band = key.split("/", 1)
        m, s, off = tables[mod]
        mean[key], std[key], offset[key] = m[band], s[band], off
    return mean, std, offset
