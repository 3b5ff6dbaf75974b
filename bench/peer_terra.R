#!/usr/bin/Rscript
# peer_terra.R -- the benchmark's peer (c2): R's terra::predict with a ranger random forest.
#
# Usage: peer_terra.R train SAMPLES.csv MODEL.rds [TREES]
#        peer_terra.R predict MODEL.rds OUTDIR CORES COVARIATE...
#
# train: fits a ranger probability forest of TREES trees (100), max.depth 6 (the size of the XGBoost forest's
#        trees), on the pixels the XGBoost forest was trained on (make_bench_data.py's forest_samples.csv).
# predict: what an R user writes: terra::predict over the covariates with cores = CORES and cpkgs = "ranger"
#        (a PSOCK cluster; each worker's ranger on one thread so the cores are not oversubscribed), na.rm = TRUE,
#        then which.max for the class. Writes gridmill predict --probabilities' outputs: probability.tif (one
#        float32 band per class) and class.tif (uint8, 255 on nodata), GeoTIFF tiled 256x256.

suppressPackageStartupMessages({
  library(terra)
  library(ranger)
})

args <- commandArgs(trailingOnly = TRUE)
usage <- "usage: peer_terra.R train SAMPLES.csv MODEL.rds [TREES] | predict MODEL.rds OUTDIR CORES COVARIATE..."
if (length(args) < 3) stop(usage)
gtiff <- c("TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "BIGTIFF=IF_SAFER")

if (args[1] == "train") {
  trees <- if (length(args) >= 4) as.integer(args[4]) else 100L
  d <- read.csv(args[2])
  d$class <- factor(d$class, levels = sort(unique(d$class)))
  t0 <- Sys.time()
  model <- ranger(class ~ ., data = d, num.trees = trees, max.depth = 6, probability = TRUE, seed = 7,
                  num.threads = parallel::detectCores())
  saveRDS(model, args[3])
  cat(sprintf("peer_terra: ranger forest of %d trees on %d samples in %.1f s: %s\n", trees, nrow(d),
              as.numeric(difftime(Sys.time(), t0, units = "secs")), args[3]))
} else if (args[1] == "predict") {
  if (length(args) < 5) stop(usage)
  t0 <- Sys.time()
  model <- readRDS(args[2])
  out <- args[3]
  cores <- as.integer(args[4])
  dir.create(out, showWarnings = FALSE, recursive = TRUE)
  covariates <- rast(args[-(1:4)])
  names(covariates) <- model$forest$independent.variable.names
  # one thread per ranger when terra already runs one worker per core
  threads <- if (cores > 1) 1L else parallel::detectCores()
  prob <- predict(covariates, model, fun = function(model, ...) predict(model, ...)$predictions,
                  num.threads = threads, na.rm = TRUE, cores = cores, cpkgs = "ranger",
                  filename = file.path(out, "probability.tif"), overwrite = TRUE,
                  wopt = list(datatype = "FLT4S", gdal = gtiff))
  best <- which.max(prob) - 1
  writeRaster(best, file.path(out, "class.tif"), datatype = "INT1U", NAflag = 255, gdal = gtiff,
              overwrite = TRUE)
  cat(sprintf("peer_terra: %dx%d pixels in %.1f s with cores = %d: %s\n", ncol(covariates), nrow(covariates),
              as.numeric(difftime(Sys.time(), t0, units = "secs")), cores, out))
} else {
  stop(usage)
}
