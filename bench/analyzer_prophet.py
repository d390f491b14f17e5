"""Prophet on the series analyzer_scale dumped: fit time per series with daily and weekly
seasonality (Prophet's defaults for sub-daily data), the comparison for bench/analyzer_baseline.sh.
Usage: analyzer_prophet.py DIR"""
import glob
import logging
import statistics
import sys
import time

import pandas as pd
from prophet import Prophet

logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
logging.getLogger("prophet").setLevel(logging.WARNING)

fits, predicts = [], []
files = sorted(glob.glob(f"{sys.argv[1]}/series_*.csv"))
for path in files:
    df = pd.read_csv(path)
    df = pd.DataFrame({"ds": pd.to_datetime(df["timestamp"], unit="s"), "y": df["value"]})
    model = Prophet(daily_seasonality=True, weekly_seasonality=True, yearly_seasonality=False)
    start = time.perf_counter()
    model.fit(df)
    fits.append(time.perf_counter() - start)
    start = time.perf_counter()
    model.predict(df[["ds"]])
    predicts.append(time.perf_counter() - start)
print(f"prophet_series {len(files)} points_each {len(df)}")
print(f"prophet_fit_seconds_median {statistics.median(fits):.3f} min {min(fits):.3f} max {max(fits):.3f}")
print(f"prophet_predict_seconds_median {statistics.median(predicts):.3f}")
