/* io_floor.c -- the benchmark's I/O floor: read every covariate block once with GDAL, write gridmill's outputs.
 *
 * No model and no processes: one thread reads each 256x256 block of every covariate (one RasterIO per dataset,
 * all its bands, as float32) and writes the block of each output with constant values. The outputs have the
 * shape, types, nodata values and creation options of gridmill's: for the full job ('run') probability.tif
 * (one float32 band per class), class.tif (uint8), entropy.tif and confusion.tif (float32); for 'predict'
 * class.tif and probability.tif. GeoTIFF, TILED=YES, 256x256 tiles, BIGTIFF=IF_SAFER, uncompressed; GDAL's
 * block cache 64 MiB, as the writer's. */
#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_string.h>
#include <float.h>
#include <gdal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define IO_ERR_LEN 2048
#define IO_MAX_COVARIATES 256
#define IO_MAX_OUTPUTS 4

typedef struct {
    const char *out_dir;
    const char *outputs;  /* "run" or "predict" */
    int classes;
    int block;
    int quiet;
    int ncovariates;
    const char *covariates[IO_MAX_COVARIATES];
} io_options_t;

typedef struct {
    const char *name;
    int bands;
    GDALDataType type;
    double nodata;
    double value;  /* what every pixel holds */
} io_output_t;

/* Prints the usage on 'f'. */
static void usage(FILE *f) {
    fprintf(f,
            "usage: io_floor --out DIR [--outputs run|predict] [--classes N] [--block-size N] [-q] COVARIATE...\n"
            "Reads every block of the covariates once with GDAL and writes gridmill's outputs with constant values:\n"
            "the I/O floor of a run on the same data.\n");
}

/* Fills 'opt' from argv. Returns 0, 1 for --help, or -1 with the reason in 'err'. */
static int options_parse(io_options_t *opt, int argc, char **argv, char *err) {
    memset(opt, 0, sizeof *opt);
    opt->outputs = "run";
    opt->classes = 12;
    opt->block = 256;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return 1;
        if (!strcmp(a, "-q")) {
            opt->quiet = 1;
        } else if (!strcmp(a, "--out") && has_value) {
            opt->out_dir = argv[++i];
        } else if (!strcmp(a, "--outputs") && has_value) {
            opt->outputs = argv[++i];
        } else if (!strcmp(a, "--classes") && has_value) {
            opt->classes = atoi(argv[++i]);
        } else if (!strcmp(a, "--block-size") && has_value) {
            opt->block = atoi(argv[++i]);
        } else if (a[0] == '-' && a[1]) {
            snprintf(err, IO_ERR_LEN, "%s: unknown option, or its value is missing", a);
            return -1;
        } else if (opt->ncovariates < IO_MAX_COVARIATES) {
            opt->covariates[opt->ncovariates++] = a;
        } else {
            snprintf(err, IO_ERR_LEN, "%s: more than %d covariates", a, IO_MAX_COVARIATES);
            return -1;
        }
    }
    if (!opt->out_dir) return snprintf(err, IO_ERR_LEN, "no output folder (--out DIR)"), -1;
    if (!opt->ncovariates) return snprintf(err, IO_ERR_LEN, "no covariate given"), -1;
    if (strcmp(opt->outputs, "run") && strcmp(opt->outputs, "predict"))
        return snprintf(err, IO_ERR_LEN, "--outputs '%s': expected run or predict", opt->outputs), -1;
    if (opt->classes < 2 || opt->classes > 255)
        return snprintf(err, IO_ERR_LEN, "--classes %d: expected 2 to 255", opt->classes), -1;
    if (opt->block < 16 || opt->block % 16)
        return snprintf(err, IO_ERR_LEN, "--block-size %d: expected a multiple of 16", opt->block), -1;
    return 0;
}

/* Lists the outputs of a run ('run') or of a classification predict ('predict') into 'outs'. Returns their count. */
static int outputs_plan(const io_options_t *opt, io_output_t *outs) {
    const io_output_t probability = {"probability", opt->classes, GDT_Float32, -FLT_MAX, 1.0 / opt->classes};
    const io_output_t klass = {"class", 1, GDT_Byte, 255, 3};
    const io_output_t entropy = {"entropy", 1, GDT_Float32, -FLT_MAX, 0.5};
    const io_output_t confusion = {"confusion", 1, GDT_Float32, -FLT_MAX, 0.25};
    if (!strcmp(opt->outputs, "predict")) {
        outs[0] = klass;
        outs[1] = probability;
        return 2;
    }
    outs[0] = probability;
    outs[1] = klass;
    outs[2] = entropy;
    outs[3] = confusion;
    return 4;
}

/* Creates output 'o' on the grid of 'like' in 'dir'. Returns the dataset, or NULL with the reason in 'err'. */
static GDALDatasetH output_create(const char *dir, const io_output_t *o, GDALDatasetH like, int block, char *err) {
    char path[1024], tile[16];
    snprintf(path, sizeof path, "%s/%s.tif", dir, o->name);
    snprintf(tile, sizeof tile, "%d", block);
    char **co = NULL;
    co = CSLSetNameValue(co, "TILED", "YES");
    co = CSLSetNameValue(co, "BLOCKXSIZE", tile);
    co = CSLSetNameValue(co, "BLOCKYSIZE", tile);
    co = CSLSetNameValue(co, "BIGTIFF", "IF_SAFER");
    CPLErrorReset();
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, GDALGetRasterXSize(like),
                                 GDALGetRasterYSize(like), o->bands, o->type, co);
    CSLDestroy(co);
    if (!ds) {
        snprintf(err, IO_ERR_LEN, "%s: cannot create: %s", path, CPLGetLastErrorMsg());
        return NULL;
    }
    double gt[6];
    if (GDALGetGeoTransform(like, gt) == CE_None) GDALSetGeoTransform(ds, gt);
    GDALSetProjection(ds, GDALGetProjectionRef(like));
    for (int b = 1; b <= o->bands; b++) GDALSetRasterNoDataValue(GDALGetRasterBand(ds, b), o->nodata);
    return ds;
}

/* Returns a block buffer of output 'o' (pixel-interleaved, 'block' x 'block') filled with o->value, or NULL. */
static void *output_buffer(const io_output_t *o, int block) {
    size_t n = (size_t)block * block * o->bands;
    void *buf = malloc(n * (size_t)GDALGetDataTypeSizeBytes(o->type));
    if (!buf) return NULL;
    GDALCopyWords(&o->value, GDT_Float64, 0, buf, o->type, GDALGetDataTypeSizeBytes(o->type), (int)n);
    return buf;
}

/* Seconds on a monotonic clock. */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Reads every block of the covariates once and writes every block of the outputs. Returns 0, or -1 with the
 * reason in 'err'. */
static int io_floor_run(const io_options_t *opt, char *err) {
    int rc = -1, nin = 0, nout = 0, in_bands = 0;
    GDALDatasetH in[IO_MAX_COVARIATES] = {0}, out[IO_MAX_OUTPUTS] = {0};
    void *out_buf[IO_MAX_OUTPUTS] = {0};
    float *in_buf = NULL;
    io_output_t outs[IO_MAX_OUTPUTS];
    double bytes_read = 0, bytes_written = 0, t0 = now_s();

    for (nin = 0; nin < opt->ncovariates; nin++) {
        CPLErrorReset();
        in[nin] = GDALOpen(opt->covariates[nin], GA_ReadOnly);
        if (!in[nin]) {
            snprintf(err, IO_ERR_LEN, "%s: cannot open: %s", opt->covariates[nin], CPLGetLastErrorMsg());
            goto out_close_inputs;
        }
        if (GDALGetRasterXSize(in[nin]) != GDALGetRasterXSize(in[0]) ||
            GDALGetRasterYSize(in[nin]) != GDALGetRasterYSize(in[0])) {
            snprintf(err, IO_ERR_LEN, "%s: size differs from %s", opt->covariates[nin], opt->covariates[0]);
            nin++;
            goto out_close_inputs;
        }
        if (GDALGetRasterCount(in[nin]) > in_bands) in_bands = GDALGetRasterCount(in[nin]);
    }
    in_buf = malloc((size_t)opt->block * opt->block * in_bands * sizeof *in_buf);
    if (!in_buf) {
        snprintf(err, IO_ERR_LEN, "out of memory for a %dx%d block", opt->block, opt->block);
        goto out_close_inputs;
    }
    if (mkdir(opt->out_dir, 0777) != 0) {
        struct stat st;
        if (stat(opt->out_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, IO_ERR_LEN, "%s: cannot create the output folder", opt->out_dir);
            goto out_free_input;
        }
    }
    int planned = outputs_plan(opt, outs);
    for (nout = 0; nout < planned; nout++) {
        out[nout] = output_create(opt->out_dir, &outs[nout], in[0], opt->block, err);
        if (!out[nout]) goto out_close_outputs;
        out_buf[nout] = output_buffer(&outs[nout], opt->block);
        if (!out_buf[nout]) {
            snprintf(err, IO_ERR_LEN, "out of memory for a block of %s", outs[nout].name);
            nout++;
            goto out_close_outputs;
        }
    }

    int xsize = GDALGetRasterXSize(in[0]), ysize = GDALGetRasterYSize(in[0]);
    for (int y = 0; y < ysize; y += opt->block) {
        int rows = ysize - y < opt->block ? ysize - y : opt->block;
        for (int x = 0; x < xsize; x += opt->block) {
            int cols = xsize - x < opt->block ? xsize - x : opt->block;
            for (int i = 0; i < nin; i++) {
                int bands = GDALGetRasterCount(in[i]);
                CPLErrorReset();
                if (GDALDatasetRasterIO(in[i], GF_Read, x, y, cols, rows, in_buf, cols, rows, GDT_Float32, bands,
                                        NULL, 0, 0, 0) != CE_None) {
                    snprintf(err, IO_ERR_LEN, "%s: cannot read block at %d,%d: %s", opt->covariates[i], x, y,
                             CPLGetLastErrorMsg());
                    goto out_close_outputs;
                }
                bytes_read += (double)cols * rows * bands * sizeof *in_buf;
            }
            for (int o = 0; o < nout; o++) {
                int size = GDALGetDataTypeSizeBytes(outs[o].type), bands = outs[o].bands;
                CPLErrorReset();
                /* pixel-interleaved buffer with a row stride of 'block' pixels, as a worker's result would be */
                if (GDALDatasetRasterIO(out[o], GF_Write, x, y, cols, rows, out_buf[o], cols, rows, outs[o].type,
                                        bands, NULL, (GSpacing)size * bands, (GSpacing)size * bands * opt->block,
                                        size) != CE_None) {
                    snprintf(err, IO_ERR_LEN, "%s.tif: cannot write block at %d,%d: %s", outs[o].name, x, y,
                             CPLGetLastErrorMsg());
                    goto out_close_outputs;
                }
                bytes_written += (double)cols * rows * bands * size;
            }
        }
    }
    rc = 0;

out_close_outputs:
    for (int o = 0; o < nout; o++) {
        if (out[o]) {
            CPLErrorReset();
            GDALClose(out[o]);
            if (rc == 0 && CPLGetLastErrorType() >= CE_Failure) {
                snprintf(err, IO_ERR_LEN, "%s.tif: cannot complete: %s", outs[o].name, CPLGetLastErrorMsg());
                rc = -1;
            }
        }
        free(out_buf[o]);
    }
out_free_input:
    free(in_buf);
out_close_inputs:
    for (int i = 0; i < nin; i++)
        if (in[i]) GDALClose(in[i]);
    if (rc == 0 && !opt->quiet)
        printf("io_floor: read %d covariates (%.0f MB) and wrote %d outputs (%.0f MB) in %.2f s\n", opt->ncovariates,
               bytes_read / 1e6, nout, bytes_written / 1e6, now_s() - t0);
    return rc;
}

int main(int argc, char **argv) {
    io_options_t opt;
    char err[IO_ERR_LEN] = "";
    int parsed = options_parse(&opt, argc, argv, err);
    if (parsed == 1) {
        usage(stdout);
        return 0;
    }
    if (parsed < 0) {
        fprintf(stderr, "io_floor: %s\n", err);
        usage(stderr);
        return 2;
    }
    GDALAllRegister();
    /* GDAL's block cache of 64 MiB, what gridmill's writer gives these outputs (unless GDAL_CACHEMAX says
     * otherwise): the blocks go to the files as they are written, not into a cache of 5 % of the memory */
    if (!CPLGetConfigOption("GDAL_CACHEMAX", NULL)) GDALSetCacheMax64((GIntBig)64 << 20);
    int rc = io_floor_run(&opt, err);
    if (rc < 0) fprintf(stderr, "io_floor: %s\n", err);
    GDALDestroyDriverManager();
    return rc < 0 ? 1 : 0;
}
