/* reader_run.c -- the full job: sample the polygons for every iteration, have workers train one model per
 * iteration, then switch to applying every model in one pass over the blocks. */
#include <dirent.h>
#include <gdal.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gm_log.h"
#include "gm_model.h"
#include "gm_polys.h"
#include "gm_sample.h"
#include "gm_wire.h"
#include "reader.h"

#define DEFAULT_ITERATIONS_IN_FLIGHT 16

typedef struct reader_run_s {
    gm_polys_t *polys;
    gm_samples_t *observations;   /* read once, added to every iteration */
    gm_sample_options_t sopt;
    gm_job_t summary;             /* the apply job, without models until all are saved */
    uint32_t iterations;
    uint32_t next_iteration;      /* next iteration to sample */
    uint32_t outstanding;         /* sampled or being sampled, not yet saved */
    uint32_t max_outstanding;
    uint32_t nsaved;
    uint8_t *saved;
    gm_model_blob_t *models;      /* bytes of each saved model */
    gm_msg_t **iter_copy;         /* a sent training task, kept until its model is saved, to re-issue */
    const char **band_names;
    const char **cat_file;        /* per feature: the covariate file of a categorical band, else NULL */
    gm_stack_t **strata;          /* --strata: the strata raster, one stack per reader stack (sampling thread) */
    uint32_t nstrata;
    gm_sample_report_t first_report;
    int width;                    /* digits of iteration numbers in file names */
} reader_run_t;

#define SAMPLING_BATCH 8 /* most iterations sampled in one pass over the polygons */

/* A few iterations' sampling, running in libuv's thread pool with a stack of its own. */
typedef struct {
    uv_work_t req;
    reader_t *r;
    uint32_t k;                          /* iterations in the batch */
    uint32_t iteration[SAMPLING_BATCH];
    int stack;
    float *X[SAMPLING_BATCH], *y[SAMPLING_BATCH]; /* each iteration's training rows and targets */
    size_t n[SAMPLING_BATCH];
    gm_sample_report_t report[SAMPLING_BATCH];
    int rc;
    char err[GM_ERR_LEN];
} sampling_t;

/* Orders strings for qsort. */
static int strcmp_ptr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Creates 'path' as a folder unless it exists. Returns 0, or -1 with 'err'. */
static int make_dir(const char *path, char *err) {
    if (mkdir(path, 0777) != 0 && errno != EEXIST) return gm_err(err, "%s: cannot create folder: %s", path, strerror(errno));
    return 0;
}

/* Appends a training parameter. */
static void add_param(gm_job_t *job, const char *key, const char *value) {
    if (job->nparams == GM_JOB_MAX_PARAMS) return;
    gm_param_t *p = &job->params[job->nparams++];
    snprintf(p->key, sizeof p->key, "%s", key);
    snprintf(p->value, sizeof p->value, "%s", value);
}

/* Parses "0.05,0.5,0.95" into the job's quantiles. Returns 0, or -1 with 'err'. */
static int parse_quantiles(const char *text, gm_job_t *job, char *err) {
    const char *p = text;
    job->nquantiles = 0;
    while (*p) {
        char *end;
        double q = strtod(p, &end);
        if (end == p || !(q >= 0 && q <= 1) || (*end && *end != ','))
            return gm_err(err, "option --quantiles: \"%s\" is not a list of numbers from 0 to 1", text);
        if (job->nquantiles == GM_JOB_MAX_QUANTILES)
            return gm_err(err, "option --quantiles: more than %d quantiles", GM_JOB_MAX_QUANTILES);
        job->quantiles[job->nquantiles++] = q;
        p = *end ? end + 1 : end;
    }
    if (job->nquantiles == 0) return gm_err(err, "option --quantiles: no quantile given");
    return 0;
}

/* Fills the summary job's options (models come later). */
static int plan_summary(reader_t *r, gm_job_t *job, gm_model_kind_t kind, const char *objective, uint32_t nclass,
                        char *err) {
    const reader_options_t *o = &r->opt;
    reader_job_grid(r, job);
    job->mode = GM_MODE_SUMMARISE;
    job->kind = kind;
    snprintf(job->objective, sizeof job->objective, "%s", objective);
    job->nclass = nclass;
    job->realisations = o->realisations;
    if (kind == GM_KIND_CLASSIFICATION) {
        job->nprob = o->nprob;
        job->summary_probs = o->summary_probs;
        if (o->quantiles) gm_log(GM_LOG_WARN, "--quantiles ignored: the models are classifications");
        /* the map's class names go into the outputs (band descriptions, category names) */
        const gm_polys_t *polys = r->run ? r->run->polys : NULL;
        if (polys && gm_polys_nclass(polys) == nclass) {
            job->class_names = calloc((size_t)nclass + 1, sizeof *job->class_names); /* NULL-ended */
            for (uint32_t c = 0; job->class_names && c < nclass; c++)
                if (!(job->class_names[c] = strndup(gm_polys_class_name(polys, c), GM_JOB_CLASS_NAME_MAX)))
                    return gm_err(err, "out of memory");
            if (!job->class_names) return gm_err(err, "out of memory");
        }
    } else {
        if (o->nprob) gm_log(GM_LOG_WARN, "--nprob ignored: the models are regressions");
        if (o->quantiles && parse_quantiles(o->quantiles, job, err) < 0) return -1;
    }
    if (!job->crs) return gm_err(err, "out of memory");
    return 0;
}

/* --models DIR: the class names of the run that trained them, from its classes.csv (in DIR or the folder
 * above it, where a run leaves it), into the job, and copied to this run's DIR/classes.csv. Without one, or
 * with another number of classes (a warning), the outputs say "class N". Returns 0, or -1 with 'err'. */
static int models_class_names(reader_t *r, gm_job_t *job, char *err) {
    const reader_options_t *o = &r->opt;
    char path[4200], mine[4200];
    snprintf(path, sizeof path, "%s/classes.csv", o->models_dir);
    if (access(path, F_OK) != 0) snprintf(path, sizeof path, "%s/../classes.csv", o->models_dir);
    if (access(path, F_OK) != 0) return 0;
    char **names;
    uint32_t n;
    if (gm_polys_read_class_table(path, &names, &n, err) < 0) return -1;
    if (n != job->nclass) {
        gm_log(GM_LOG_WARN, "%s names %u classes, the models have %u: the outputs say \"class N\"", path, n,
               job->nclass);
        for (uint32_t i = 0; i < n; i++) free(names[i]);
        free(names);
        return 0;
    }
    job->class_names = names;
    if (!reader_is_primary(r)) return 0;
    snprintf(mine, sizeof mine, "%s/classes.csv", o->out_dir);
    if (make_dir(o->out_dir, err) < 0) return -1;
    return gm_polys_write_class_names((const char *const *)names, n, mine, err);
}

/* --models DIR: loads DIR/iter-*.json (or .ubj) in name order and installs the summary job. */
static int load_models(reader_t *r, char *err) {
    const reader_options_t *o = &r->opt;
    gm_job_t job;
    memset(&job, 0, sizeof job);
    DIR *d = opendir(o->models_dir);
    if (!d) return gm_err(err, "%s: cannot open the models folder: %s", o->models_dir, strerror(errno));
    char **names = NULL;
    size_t n = 0;
    int rc = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "iter-", 5) != 0 || len < 9) continue;
        if (strcmp(e->d_name + len - 5, ".json") != 0 && strcmp(e->d_name + len - 4, ".ubj") != 0) continue;
        char **more = realloc(names, (n + 1) * sizeof *names);
        if (!more || !(more[n] = strdup(e->d_name))) {
            free(more ? more : names);
            names = NULL;
            closedir(d);
            return gm_err(err, "out of memory");
        }
        names = more;
        n++;
    }
    closedir(d);
    if (n == 0) {
        gm_err(err, "%s: no iter-*.json or iter-*.ubj model in the folder", o->models_dir);
        goto out;
    }
    if (n > GM_JOB_MAX_MODELS) {
        gm_err(err, "%s: %zu models, more than %d", o->models_dir, n, GM_JOB_MAX_MODELS);
        goto out;
    }
    qsort(names, n, sizeof *names, strcmp_ptr);
    job.models = calloc(n, sizeof *job.models);
    if (!job.models) {
        gm_err(err, "out of memory");
        goto out;
    }
    job.nmodels = (uint32_t)n;
    gm_model_info_t first = {0};
    for (size_t i = 0; i < n; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", o->models_dir, names[i]);
        gm_model_blob_t *m = &job.models[i];
        if (gm_model_read_file(path, &m->bytes, &m->size, err) < 0) goto out;
        gm_model_t *model = gm_model_load(m->bytes, m->size, 1, path, err);
        if (!model) goto out;
        gm_model_info_t mi = *gm_model_info(model);
        gm_model_destroy(&model);
        if (i == 0) first = mi;
        if (mi.nfeature != gm_stack_nbands(r->stacks[0])) {
            gm_err(err, "%s: the model expects %u features, the covariates have %u band%s", path, mi.nfeature,
                   gm_stack_nbands(r->stacks[0]), gm_stack_nbands(r->stacks[0]) == 1 ? "" : "s");
            goto out;
        }
        if (mi.kind != first.kind || mi.nclass != first.nclass) {
            gm_err(err, "%s: %s with %u classes, unlike %s (%s, %u classes)", path, mi.objective, mi.nclass, names[0],
                   first.objective, first.nclass);
            goto out;
        }
        snprintf(m->format, sizeof m->format, "%s", gm_job_model_format(m->bytes, m->size));
    }
    if (plan_summary(r, &job, first.kind, first.objective, first.nclass, err) < 0) goto out;
    if (first.kind == GM_KIND_CLASSIFICATION && models_class_names(r, &job, err) < 0) goto out;
    if (gm_job_plan_outputs(&job, err) < 0 || reader_job_install(r, &job, err) < 0) goto out;
    gm_log(GM_LOG_INFO, "%s: %zu models (%s)", o->models_dir, n, first.objective);
    rc = 0;
out:
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    gm_job_clear(&job);
    return rc;
}

/* FNV-1a over 'len' bytes, continued from 'h'. */
static uint64_t fnv(uint64_t h, const void *data, size_t len) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* Hashes a string option (NULL counts as absent) into 'h'. */
static uint64_t fnv_str(uint64_t h, const char *s) { return s ? fnv(h, s, strlen(s) + 1) : fnv(h, "\1", 1); }

/* Hashes a file's path, size and modification time, so a changed input makes another run. */
static uint64_t fnv_file(uint64_t h, const char *path) {
    struct stat st;
    h = fnv_str(h, path);
    if (path && stat(path, &st) == 0) {
        int64_t facts[2] = {(int64_t)st.st_size, (int64_t)st.st_mtime};
        h = fnv(h, facts, sizeof facts);
    }
    return h;
}

/* The run's identity: the training job (grid, model parameters, seed, iterations) and every input and
 * option sampling depends on. A folder holding models of another identity is never resumed. */
static uint64_t run_key(const reader_t *r) {
    const reader_options_t *o = &r->opt;
    uint64_t h = fnv(0xcbf29ce484222325ULL, &r->job.id, sizeof r->job.id);
    if (r->run && r->run->polys) { /* MAP and MAP:LAYER naming the same layer are the same input */
        h = fnv_str(h, gm_polys_source(r->run->polys));
        h = fnv_file(h, gm_polys_file(r->run->polys));
    } else {
        h = fnv_file(h, o->polygons);
    }
    h = fnv_str(h, o->class_field);
    h = fnv_str(h, o->target_field);
    h = fnv_file(h, o->composition);
    h = fnv_str(h, o->composition_fields);
    h = fnv_str(h, o->id_field);
    h = fnv_file(h, o->observations);
    h = fnv_str(h, o->observations_field);
    h = fnv_str(h, o->observations_crs);
    if (o->strata) h = fnv_file(h, o->strata);
    if (o->allocation) h = fnv(h, &o->allocation, sizeof o->allocation); /* weighted: as before it existed */
    double sampling[4] = {(double)o->per_polygon, o->density, (double)o->min_samples, (double)o->align};
    h = fnv(h, sampling, sizeof sampling);
    for (int i = 0; i < o->ncovariates; i++) h = fnv_file(h, o->covariates[i]);
    return h;
}

/* Resuming: checks DIR/.gridmill-run names this run (or writes it), then takes every model already saved in
 * DIR/models as trained. Returns 0, or -1 with 'err'. */
static int resume_models(reader_t *r, char *err) {
    reader_run_t *run = r->run;
    const reader_options_t *o = &r->opt;
    char path[4200], line[64];
    uint64_t key = run_key(r);
    snprintf(path, sizeof path, "%s/.gridmill-run", o->out_dir);
    FILE *f = fopen(path, "r");
    if (!f && !reader_is_primary(r)) return 0; /* a fresh run: the first reader writes the key */
    if (f) {
        unsigned long long old = 0;
        int got = fgets(line, sizeof line, f) && sscanf(line, "run %llx", &old) == 1;
        fclose(f);
        if (!got || old != key)
            return gm_err(err, "%s: the folder holds a run with other inputs or options (%s); choose another --out, "
                          "or remove the folder to start again", o->out_dir, path);
    } else {
        char tmp[4300];
        snprintf(tmp, sizeof tmp, "%s.part", path);
        f = fopen(tmp, "w");
        if (!f || fprintf(f, "run %016llx\n", (unsigned long long)key) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
            return gm_err(err, "%s: cannot write: %s", path, strerror(errno));
        return 0;
    }
    uint32_t found = 0;
    for (uint32_t i = 0; i < run->iterations; i++) {
        gm_model_blob_t *m = &run->models[i];
        snprintf(path, sizeof path, "%s/models/iter-%0*u.json", o->out_dir, run->width, i + 1);
        if (access(path, F_OK) != 0) continue;
        if (gm_model_read_file(path, &m->bytes, &m->size, err) < 0) return -1;
        gm_model_t *model = gm_model_load(m->bytes, m->size, 1, path, err);
        if (!model) return -1;
        gm_model_destroy(&model);
        snprintf(m->format, sizeof m->format, "%s", gm_job_model_format(m->bytes, m->size));
        run->saved[i] = 1;
        run->nsaved++;
        found++;
    }
    if (found) gm_log(GM_LOG_INFO, "resuming: %u of %u models already trained in %s/models", found, run->iterations, o->out_dir);
    return 0;
}

/* Builds the training job from the options and the polygon map. */
/* --strata: checks it against the covariates' grid and the composition, and opens one stack of it per
 * reader stack (each sampling thread reads its own). Returns 0, or -1 with 'err'. */
static int open_strata(reader_t *r, char *err) {
    const reader_options_t *o = &r->opt;
    reader_run_t *run = r->run;
    int stratified = gm_polys_has_strata(run->polys);
    if (!o->strata && stratified)
        return gm_err(err, "%s: the composition has a stratum column: give the strata raster (--strata RASTER)",
                      o->composition);
    if (!o->strata) return 0;
    if (!stratified)
        return gm_err(err, "option --strata: the composition has no stratum column (poly,mapunit,stratum,"
                      "soil_class,proportion)");
    const char *both[2] = {o->covariates[0], o->strata};
    gm_stack_t *check = gm_stack_open(both, 2, err); /* the same grid as the covariates, or the line says how */
    if (!check) return -1;
    gm_stack_destroy(&check);
    run->nstrata = o->io_threads ? o->io_threads : 1;
    run->strata = calloc(run->nstrata, sizeof *run->strata);
    if (!run->strata) return gm_err(err, "out of memory");
    if (!(run->strata[0] = gm_stack_open(&o->strata, 1, err))) return -1;
    if (gm_stack_nbands(run->strata[0]) != 1)
        return gm_err(err, "%s: the strata raster has %u bands, not one", o->strata, gm_stack_nbands(run->strata[0]));
    for (uint32_t k = 1; k < run->nstrata; k++)
        if (!(run->strata[k] = gm_stack_reopen(run->strata[0], err))) return -1;
    return 0;
}

/* --categorical: marks the bands of each named covariate 'c' in the job's feature_types (as XGBoost names
 * them) and remembers their file for the checks of sampled values. Returns 0, or -1 with 'err'. */
static int plan_categorical(reader_t *r, gm_job_t *job, char *err) {
    const reader_options_t *o = &r->opt;
    reader_run_t *run = r->run;
    if (!o->ncategorical) return 0;
    uint32_t nb = gm_stack_nbands(r->stacks[0]), f = 0;
    run->cat_file = calloc(nb ? nb : 1, sizeof *run->cat_file);
    if (!run->cat_file) return gm_err(err, "out of memory");
    memset(job->feature_types, 'q', nb);
    job->feature_types[nb] = '\0';
    for (int c = 0; c < o->ncategorical; c++) {
        int found = 0;
        for (int i = 0; i < o->ncovariates; i++) found |= !strcmp(o->categorical[c], o->covariates[i]);
        if (!found) return gm_err(err, "option --categorical: %s is not one of the --covariates", o->categorical[c]);
    }
    for (int i = 0; i < o->ncovariates && f < nb; i++) {
        GDALDatasetH ds = GDALOpenEx(o->covariates[i], GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
        int bands = ds ? GDALGetRasterCount(ds) : 0;
        if (ds) GDALClose(ds);
        int cat = 0;
        for (int c = 0; c < o->ncategorical; c++) cat |= !strcmp(o->categorical[c], o->covariates[i]);
        for (int b = 0; b < bands && f < nb; b++, f++)
            if (cat) {
                job->feature_types[f] = 'c';
                run->cat_file[f] = o->covariates[i];
            }
    }
    return 0;
}

/* Checks the categorical features of 'n' sample rows of 'nb' values: each a whole number >= 0 (below 2^24, as
 * XGBoost's categories). Returns 0, or -1 with 'err' naming the file and the point. */
static int check_categories(const reader_run_t *run, const gm_samples_t *smp, size_t from, uint32_t nb, char *err) {
    if (!run->cat_file) return 0;
    for (size_t i = from; i < smp->n; i++)
        for (uint32_t f = 0; f < nb; f++) {
            float v = smp->values[i * nb + f];
            if (run->cat_file[f] && !(v >= 0 && v == floorf(v) && v < 16777216.0f))
                return gm_err(err, "%s: a categorical band holds %g at %.17g, %.17g: categories are whole numbers >= 0",
                              run->cat_file[f], v, smp->x[i], smp->y[i]);
        }
    return 0;
}

static int plan_training(reader_t *r, gm_job_t *job, char *err) {
    const reader_options_t *o = &r->opt;
    reader_run_t *run = r->run;
    char v[48];
    reader_job_grid(r, job);
    job->mode = GM_MODE_TRAIN;
    job->iterations = o->iterations;
    job->seed = o->seed;
    if (gm_polys_is_regression(run->polys)) {
        job->kind = GM_KIND_REGRESSION;
        snprintf(job->objective, sizeof job->objective, "%s", o->objective ? o->objective : "reg:squarederror");
        if (!strncmp(job->objective, "binary:", 7) || !strncmp(job->objective, "multi:", 6) ||
            !strncmp(job->objective, "rank:", 5))
            return gm_err(err, "option --objective: %s is not a regression objective (--target-field fits a "
                          "number: reg:squarederror, reg:absoluteerror, count:poisson, reg:gamma, ...)",
                          job->objective);
    } else {
        job->kind = GM_KIND_CLASSIFICATION;
        job->nclass = gm_polys_nclass(run->polys);
        if (job->nclass < 2) return gm_err(err, "%s: the map has %u class; a classification needs 2 or more", o->polygons, job->nclass);
        snprintf(job->objective, sizeof job->objective, "multi:softprob");
        if (o->objective) gm_log(GM_LOG_WARN, "--objective ignored: classes are fitted with multi:softprob");
    }
    add_param(job, "tree_method", "hist");
    if (plan_categorical(r, job, err) < 0) return -1;
    snprintf(v, sizeof v, "%u", o->max_depth);
    add_param(job, "max_depth", v);
    if (o->rf) {
        /* a random forest: one round of T parallel trees on bootstrap-like row samples and sqrt(K) columns */
        job->rounds = 1;
        snprintf(v, sizeof v, "%u", o->trees);
        add_param(job, "num_parallel_tree", v);
        add_param(job, "subsample", "0.632");
        double mtry = floor(sqrt((double)job->nbands));
        snprintf(v, sizeof v, "%.6f", (mtry < 1 ? 1 : mtry) / job->nbands);
        add_param(job, "colsample_bynode", v);
        add_param(job, "eta", o->eta ? o->eta : "1");
    } else {
        job->rounds = o->trees;
        add_param(job, "eta", o->eta ? o->eta : (o->trees == 1 ? "1" : "0.3"));
    }
    /* the smallest leaf: the hessian of two samples at the start, as C5.0's minCases = 2 (softprob: p (1 - p)
     * with p = 1 / K each; a squared error: 1 each); --xgb-param min_child_weight=W overrides it */
    int own_mcw = 0;
    for (int i = 0; i < o->nxgb_params; i++) own_mcw |= !strncmp(o->xgb_params[i], "min_child_weight=", 17);
    if (!own_mcw) {
        double k = job->kind == GM_KIND_CLASSIFICATION ? (double)job->nclass : 0;
        snprintf(v, sizeof v, "%.6g", k > 1 ? 2.0 * (1.0 / k) * (1.0 - 1.0 / k) : 2.0);
        add_param(job, "min_child_weight", v);
    }
    for (int i = 0; i < o->nxgb_params; i++) {
        const char *eq = strchr(o->xgb_params[i], '=');
        char key[48];
        snprintf(key, sizeof key, "%.*s", (int)(eq - o->xgb_params[i]), o->xgb_params[i]);
        add_param(job, key, eq + 1);
    }
    if (!job->crs) return gm_err(err, "out of memory");
    return 0;
}

int reader_run_start(reader_t *r, char *err) {
    const reader_options_t *o = &r->opt;
    if (make_dir(o->out_dir, err) < 0) return -1;
    r->run = calloc(1, sizeof *r->run);
    if (!r->run) return gm_err(err, "out of memory");
    reader_run_t *run = r->run;
    if (o->models_dir) return load_models(r, err);

    const char *wkt = gm_stack_grid(r->stacks[0])->crs;
    gm_polys_options_t po = {.path = o->polygons, .class_field = o->class_field, .target_field = o->target_field,
                             .composition = o->composition, .composition_fields = o->composition_fields,
                             .id_field = o->id_field};
    /* the observations' field: as named, else the map's class or target field, else (composition) soil_class
     * or class; observed classes join the map's (as rdsmart adds them) */
    const char *obs_field = o->observations_field ? o->observations_field
                            : o->class_field         ? o->class_field
                                                     : o->target_field;
    char **obs_classes = NULL;
    uint32_t nobs_classes = 0;
    if (o->observations && !o->target_field &&
        gm_polys_point_classes(o->observations, obs_field, &obs_classes, &nobs_classes, err) < 0)
        return -1;
    po.extra_classes = (const char *const *)obs_classes;
    po.nextra_classes = nobs_classes;
    run->polys = gm_polys_open(&po, wkt, err);
    for (uint32_t k = 0; k < nobs_classes; k++) free(obs_classes[k]);
    free(obs_classes);
    if (!run->polys) return -1;
    uint32_t nb = gm_stack_nbands(r->stacks[0]);
    run->observations = gm_samples_new(nb);
    run->band_names = calloc(nb, sizeof *run->band_names);
    run->iterations = o->iterations;
    run->saved = calloc(o->iterations, 1);
    run->models = calloc(o->iterations, sizeof *run->models);
    run->iter_copy = calloc(o->iterations, sizeof *run->iter_copy);
    if (!run->observations || !run->band_names || !run->saved || !run->models || !run->iter_copy)
        return gm_err(err, "out of memory");
    for (uint32_t b = 0; b < nb; b++) run->band_names[b] = gm_stack_band_column(r->stacks[0], b);
    run->width = gm_job_iteration_width(o->iterations);
    run->max_outstanding = o->max_inflight ? o->max_inflight : DEFAULT_ITERATIONS_IN_FLIGHT;
    run->sopt = (gm_sample_options_t){.per_polygon = o->per_polygon, .density_km2 = o->density,
                                      .min_per_polygon = o->min_samples, .seed = o->seed,
                                      .allocation = (gm_sample_allocation_t)o->allocation};
    if (open_strata(r, err) < 0) return -1;
    if (o->observations) {
        gm_sample_obs_report_t orep;
        if (gm_sample_read_observations(o->observations, obs_field, o->observations_crs, run->polys, wkt,
                                        r->stacks[0], run->observations, &orep, err) < 0)
            return -1;
        if (orep.kept == 0)
            return gm_err(err, "%s: no observation on the rasters (%llu features: %llu without a value or a point, "
                          "%llu off the rasters or on nodata)", o->observations, (unsigned long long)orep.features,
                          (unsigned long long)orep.skipped_no_value, (unsigned long long)orep.dropped);
        if (orep.dropped || orep.skipped_no_value)
            gm_log(GM_LOG_LOSS, "%s: %llu of %llu observations left out (%llu off the rasters or on nodata, %llu "
                   "without a value or a point)", o->observations,
                   (unsigned long long)(orep.dropped + orep.skipped_no_value), (unsigned long long)orep.features,
                   (unsigned long long)orep.dropped, (unsigned long long)orep.skipped_no_value);
        gm_log(GM_LOG_INFO, "%s: %llu observations added to every iteration (%llu off the rasters or on nodata)",
               o->observations, (unsigned long long)orep.kept, (unsigned long long)orep.dropped);
    }

    char path[4200];
    snprintf(path, sizeof path, "%s/samples", o->out_dir);
    if (make_dir(path, err) < 0) return -1;
    if (!gm_polys_is_regression(run->polys) && reader_is_primary(r)) {
        snprintf(path, sizeof path, "%s/classes.csv", o->out_dir);
        if (gm_polys_write_class_table(run->polys, path, err) < 0) return -1;
    }
    const gm_polys_report_t *pr = gm_polys_report(run->polys);
    gm_log(GM_LOG_INFO, "%s: %u polygons, %u classes; %llu features skipped (no value %llu, no geometry %llu, "
           "no composition %llu, invalid beyond repair %llu); %llu invalid polygons repaired with MakeValid",
           o->polygons, gm_polys_count(run->polys), gm_polys_nclass(run->polys),
           (unsigned long long)(pr->skipped_no_value + pr->skipped_no_geometry + pr->skipped_no_composition +
                                pr->skipped_invalid),
           (unsigned long long)pr->skipped_no_value, (unsigned long long)pr->skipped_no_geometry,
           (unsigned long long)pr->skipped_no_composition, (unsigned long long)pr->skipped_invalid,
           (unsigned long long)pr->repaired_invalid);

    gm_job_t job;
    memset(&job, 0, sizeof job);
    int rc = plan_training(r, &job, err) == 0 &&
                     plan_summary(r, &run->summary, job.kind, job.objective, job.nclass, err) == 0 &&
                     reader_job_install(r, &job, err) == 0
                 ? 0
                 : -1;
    gm_job_clear(&job);
    if (rc == 0) rc = resume_models(r, err);
    if (rc == 0)
        gm_log(GM_LOG_INFO, "job %016llx: training %u models (%s, %u round%s) on samples of %u polygons",
               (unsigned long long)r->job.id, o->iterations, r->job.objective, r->job.rounds,
               r->job.rounds > 1 ? "s" : "", gm_polys_count(run->polys));
    return rc;
}

static int write_not_drawn(reader_t *r, uint32_t it, const gm_samples_t *smp, char *err);

/* Adds the observations to iteration j's table, writes it, and lays out its training rows. Returns 0, or -1
 * with s->err. */
static int finish_iteration(sampling_t *s, uint32_t j, gm_samples_t *smp) {
    reader_t *r = s->r;
    reader_run_t *run = r->run;
    uint32_t nb = smp->nbands;
    char path[4200];
    if (reader_is_primary(r) && write_not_drawn(r, s->iteration[j], smp, s->err) < 0) return -1;
    const gm_samples_t *obs = run->observations;
    for (size_t i = 0; i < obs->n; i++)
        if (gm_samples_append(smp, obs->x[i], obs->y[i], obs->polygon[i], obs->code[i], obs->target[i],
                              obs->values + i * nb, s->err) < 0)
            return -1;
    if (check_categories(run, smp, 0, nb, s->err) < 0) return -1; /* the polygons' points and the observations */
    if (smp->n == 0)
        return gm_err(s->err, "%s: no sample point on valid covariates in any of its %u polygons (all on nodata or "
                      "off the rasters)", r->opt.polygons, gm_polys_count(run->polys));
    snprintf(path, sizeof path, "%s/samples/iter-%0*u.csv", r->opt.out_dir, run->width, s->iteration[j] + 1);
    if (gm_samples_write_csv(smp, run->polys, s->iteration[j] + 1, run->band_names, path, s->err) < 0) return -1;
    s->n[j] = smp->n;
    s->X[j] = malloc(smp->n * nb * sizeof(float));
    s->y[j] = malloc(smp->n * sizeof(float));
    if (!s->X[j] || !s->y[j]) return gm_err(s->err, "out of memory for %zu samples", smp->n);
    memcpy(s->X[j], smp->values, smp->n * nb * sizeof(float));
    int regression = gm_polys_is_regression(run->polys);
    for (size_t i = 0; i < smp->n; i++) s->y[j][i] = regression ? smp->target[i] : (float)smp->code[i];
    return 0;
}

/* Writes polygon 'i''s name as the sample tables give it (its --id-field value, else its FID) into 'out'. */
static void polygon_name(const gm_polys_t *p, uint32_t i, char *out, size_t cap) {
    const char *id = gm_polys_id(p, i);
    if (id) snprintf(out, cap, "%s", id);
    else snprintf(out, cap, "%lld", (long long)gm_polys_fid(p, i));
}

/* Iteration 'it' (from 0) drew fewer points than wanted in some polygons (none has a pixel with valid
 * covariates left to draw from): one warning of lost data naming the first few, with the totals and the list
 * write_not_drawn made. Returns 0. */
static int report_not_drawn(reader_t *r, uint32_t it, const gm_sample_report_t *rep) {
    reader_run_t *run = r->run;
    char path[4200], name[256];
    snprintf(path, sizeof path, "%s/samples/not-drawn-%0*u.csv", r->opt.out_dir, run->width, it + 1);
    if (!rep->points_short) return 0;
    char list[1024];
    size_t len = 0;
    for (uint32_t k = 0; k < rep->nshort && k < 5 && len < sizeof list; k++) {
        polygon_name(run->polys, rep->shorts[k].polygon, name, sizeof name);
        len += (size_t)snprintf(list + len, sizeof list - len, "%spolygon %s (%u of %u)", k ? ", " : "", name,
                                rep->shorts[k].drawn, rep->shorts[k].wanted);
    }
    gm_log(GM_LOG_LOSS, "sampling: iteration %u: %llu point%s not drawn in %u polygon%s with no pixel of valid "
           "covariates left to draw from: %s%s (see %s)", it + 1, (unsigned long long)rep->points_short,
           rep->points_short > 1 ? "s" : "", rep->polygons_short, rep->polygons_short > 1 ? "s" : "", list,
           rep->polygons_short > 5 ? ", ..." : "", path);
    return 0;
}

/* Writes DIR/samples/not-drawn-NNN.csv for iteration 'it' (from 0) from its table 'smp' (its polygon
 * points, before the observations): every polygon with fewer points than it wanted, as
 * iteration,polygon,wanted,drawn (polygon: as the sample tables name it); none: no file. Returns 0, or -1
 * with 'err'. */
static int write_not_drawn(reader_t *r, uint32_t it, const gm_samples_t *smp, char *err) {
    reader_run_t *run = r->run;
    uint32_t np = gm_polys_count(run->polys);
    char path[4200], tmp[4300], name[256];
    snprintf(path, sizeof path, "%s/samples/not-drawn-%0*u.csv", r->opt.out_dir, run->width, it + 1);
    uint32_t *drawn = calloc((size_t)np + 1, sizeof *drawn);
    if (!drawn) return gm_err(err, "out of memory counting the points of %u polygons", np);
    for (size_t k = 0; k < smp->n; k++)
        if (smp->polygon[k] < np) drawn[smp->polygon[k]]++;
    FILE *f = NULL;
    int ok = 1;
    for (uint32_t i = 0; i < np && ok; i++) {
        uint32_t wanted = gm_sample_wanted(run->polys, i, &run->sopt);
        if (drawn[i] >= wanted) continue;
        if (!f) {
            snprintf(tmp, sizeof tmp, "%s.part", path);
            if (!(f = fopen(tmp, "w"))) {
                free(drawn);
                return gm_err(err, "%s: cannot create: %s", tmp, strerror(errno));
            }
            fputs("iteration,polygon,wanted,drawn\n", f);
        }
        polygon_name(run->polys, i, name, sizeof name);
        fprintf(f, "%u,", it + 1);
        gm_polys_put_csv_field(f, name);
        ok = fprintf(f, ",%u,%u\n", wanted, drawn[i]) > 0;
    }
    free(drawn);
    if (!f) {
        unlink(path); /* every point drawn: a list from an earlier run goes */
        return 0;
    }
    ok = !ferror(f) && ok;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) return gm_err(err, "%s: cannot write: %s", path, strerror(errno));
    return 0;
}

/* Samples the batch's iterations in one pass over the polygons, then finishes each. */
static void do_sampling(uv_work_t *req) {
    sampling_t *s = req->data;
    reader_t *r = s->r;
    reader_run_t *run = r->run;
    uint32_t nb = gm_stack_nbands(r->stacks[s->stack]);
    gm_samples_t *smp[SAMPLING_BATCH] = {0};
    s->rc = -1;
    for (uint32_t j = 0; j < s->k; j++)
        if (!(smp[j] = gm_samples_new(nb))) {
            gm_err(s->err, "out of memory");
            goto out;
        }
    gm_sample_options_t so = run->sopt;
    so.strata = run->strata ? run->strata[s->stack] : NULL; /* this thread's own */
    if (gm_sample_iterations(run->polys, r->stacks[s->stack], &so, s->iteration, s->k, smp, s->report, s->err) < 0)
        goto out;
    for (uint32_t j = 0; j < s->k; j++)
        if (finish_iteration(s, j, smp[j]) < 0) goto out;
    s->rc = 0;
out:
    for (uint32_t j = 0; j < s->k; j++) gm_samples_destroy(&smp[j]);
}

/* Queues the training task of the batch's iteration j. Returns 0, or -1 when out of memory. */
static int queue_training(sampling_t *s, uint32_t j) {
    reader_t *r = s->r;
    char err[GM_ERR_LEN];
    gm_log(GM_LOG_DEBUG, "iteration %u: %zu samples", s->iteration[j] + 1, s->n[j]);
    gm_header_t h = {.kind = GM_MSG_TRAIN, .job = r->job.id, .iteration = s->iteration[j], .count = (uint32_t)s->n[j],
                     .cols = r->job.nbands};
    void *buf;
    size_t len;
    gm_msg_t *msg = gm_msg_new();
    int ok = msg && gm_wire_encode(&h, &buf, &len, err) == 0 && gm_msg_add_owned(msg, buf, len) == 0 &&
             gm_msg_add_owned(msg, s->X[j], s->n[j] * r->job.nbands * sizeof(float)) == 0;
    s->X[j] = NULL;
    ok = ok && gm_msg_add_owned(msg, s->y[j], s->n[j] * sizeof(float)) == 0;
    s->y[j] = NULL;
    if (!ok || reader_feed_queue(r, msg, UINT32_MAX, s->iteration[j]) < 0) {
        gm_msg_destroy(&msg);
        return -1;
    }
    return 0;
}

static void after_sampling(uv_work_t *req, int status) {
    sampling_t *s = req->data;
    reader_t *r = s->r;
    reader_run_t *run = r->run;
    char err[GM_ERR_LEN];
    r->free_stacks[r->nfree++] = s->stack;
    if (r->finished || status == UV_ECANCELED) goto out;
    if (s->rc < 0) {
        gm_log(GM_LOG_ERROR, "%s", s->err);
        reader_finish(r, 1);
        goto out;
    }
    for (uint32_t j = 0; j < s->k; j++) {
        const gm_sample_report_t *rep = &s->report[j];
        if (s->iteration[j] == 0) {
            run->first_report = *rep;
            if (rep->polygons_outside)
                gm_log(GM_LOG_LOSS, "sampling: %u polygon%s outside the rasters: no points there, in any iteration",
                       rep->polygons_outside, rep->polygons_outside > 1 ? "s lie" : " lies");
            if (rep->polygons_small)
                gm_log(GM_LOG_WARN, "sampling: %u polygon%s smaller than a pixel (sampled all the same)",
                       rep->polygons_small, rep->polygons_small > 1 ? "s are" : " is");
        }
        report_not_drawn(r, s->iteration[j], rep);
        if (queue_training(s, j) < 0) {
            gm_log(GM_LOG_ERROR, "iteration %u: out of memory queueing the training task", s->iteration[j] + 1);
            reader_finish(r, 1);
            goto out;
        }
    }
    reader_run_pump(r, err);
out:
    for (uint32_t j = 0; j < s->k; j++) {
        free(s->X[j]);
        free(s->y[j]);
    }
    free(s);
}

static void switch_to_summary(reader_t *r);

int reader_run_pump(reader_t *r, char *err) {
    reader_run_t *run = r->run;
    (void)err;
    while (run->next_iteration < run->iterations && run->saved[run->next_iteration]) run->next_iteration++;
    if (r->job.mode == GM_MODE_TRAIN && run->nsaved == run->iterations) {
        switch_to_summary(r); /* every model was there already */
        return 0;
    }
    /* only the first reader samples and trains; the others learn each model from the writer's "saved" */
    while (reader_is_primary(r) && !r->finished && run->next_iteration < run->iterations &&
           run->outstanding < run->max_outstanding && r->nfree > 0) {
        /* the iterations left, shared among the idle threads, a batch each pass over the polygons */
        uint32_t left = 0;
        for (uint32_t i = run->next_iteration; i < run->iterations; i++) left += !run->saved[i];
        uint32_t k = (left + r->nfree - 1) / r->nfree;
        if (k > SAMPLING_BATCH) k = SAMPLING_BATCH;
        if (k > run->max_outstanding - run->outstanding) k = run->max_outstanding - run->outstanding;
        sampling_t *s = calloc(1, sizeof *s);
        if (!s) return gm_err(err, "out of memory");
        s->r = r;
        while (s->k < k && run->next_iteration < run->iterations) {
            uint32_t i = run->next_iteration++;
            if (!run->saved[i]) s->iteration[s->k++] = i;
        }
        if (s->k == 0) {
            free(s);
            break;
        }
        s->stack = r->free_stacks[--r->nfree];
        s->req.data = s;
        run->outstanding += s->k;
        uv_queue_work(r->loop, &s->req, do_sampling, after_sampling);
    }
    return 0;
}

/* Every model is saved: attach them to the summary job, make it current, and start the block pass. */
static void switch_to_summary(reader_t *r) {
    if (r->job.mode != GM_MODE_TRAIN) return;
    reader_run_t *run = r->run;
    gm_job_t *job = &run->summary;
    char err[GM_ERR_LEN];
    job->nmodels = run->iterations;
    job->models = run->models;
    run->models = NULL;
    if (gm_job_plan_outputs(job, err) < 0 || reader_job_install(r, job, err) < 0 || reader_feed_begin(r, err) < 0) {
        gm_log(GM_LOG_ERROR, "%s", err);
        reader_finish(r, 1);
    }
}

void reader_run_saved(reader_t *r, gm_msg_t *msg, const gm_header_t *h) {
    reader_run_t *run = r->run;
    if (r->job.mode != GM_MODE_TRAIN || h->job != r->job.id || h->iteration >= run->iterations || msg->nframes != 2) {
        gm_log(GM_LOG_WARN, "acks: dropped a \"saved\" message for job %016llx iteration %u", (unsigned long long)h->job,
               h->iteration);
        r->dropped++;
        return;
    }
    if (run->saved[h->iteration]) return; /* already have it */
    gm_model_blob_t *m = &run->models[h->iteration];
    m->size = gm_msg_size(msg, 1);
    m->bytes = malloc(m->size);
    if (!m->bytes) {
        gm_log(GM_LOG_ERROR, "out of memory keeping model %u", h->iteration + 1);
        reader_finish(r, 1);
        return;
    }
    memcpy(m->bytes, gm_msg_data(msg, 1), m->size);
    snprintf(m->format, sizeof m->format, "%s", gm_job_model_format(m->bytes, m->size));
    run->saved[h->iteration] = 1;
    run->nsaved++;
    gm_msg_destroy(&run->iter_copy[h->iteration]);
    r->last_progress = uv_now(r->loop);
    if (run->outstanding) run->outstanding--;
    if (run->nsaved == run->iterations) {
        gm_log(GM_LOG_INFO, "all %u models trained and saved", run->iterations);
        switch_to_summary(r);
        return;
    }
    char err[GM_ERR_LEN];
    reader_run_pump(r, err);
}

void reader_run_sent(reader_t *r, uint32_t iteration, gm_msg_t *copy) {
    reader_run_t *run = r->run;
    if (!run || iteration >= run->iterations || run->saved[iteration]) {
        gm_msg_destroy(&copy);
        return;
    }
    gm_msg_destroy(&run->iter_copy[iteration]);
    run->iter_copy[iteration] = copy;
}

uint32_t reader_run_reissue(reader_t *r) {
    reader_run_t *run = r->run;
    uint32_t n = 0;
    if (!run || !run->iter_copy || r->job.mode != GM_MODE_TRAIN) return 0;
    for (uint32_t i = 0; i < run->iterations; i++) {
        if (run->saved[i] || !run->iter_copy[i]) continue;
        gm_msg_t *again = gm_msg_dup(run->iter_copy[i]);
        if (!again || reader_feed_queue(r, again, UINT32_MAX, i) < 0) {
            gm_msg_destroy(&again);
            gm_log(GM_LOG_ERROR, "out of memory re-issuing iteration %u", i + 1);
            reader_finish(r, 1);
            return n;
        }
        n++;
    }
    return n;
}

void reader_run_free(reader_t *r) {
    reader_run_t *run = r->run;
    if (!run) return;
    gm_polys_destroy(&run->polys);
    gm_samples_destroy(&run->observations);
    for (uint32_t i = 0; run->models && i < run->iterations; i++) free(run->models[i].bytes);
    free(run->models);
    for (uint32_t i = 0; run->iter_copy && i < run->iterations; i++) gm_msg_destroy(&run->iter_copy[i]);
    free(run->iter_copy);
    free(run->saved);
    free(run->band_names);
    free(run->cat_file);
    for (uint32_t k = 0; k < run->nstrata; k++) gm_stack_destroy(&run->strata[k]);
    free(run->strata);
    gm_job_clear(&run->summary);
    free(run);
    r->run = NULL;
}

void reader_run_progress(const reader_t *r, uint32_t *done, uint32_t *total) {
    *done = r->run ? r->run->nsaved : 0;
    *total = r->run ? r->run->iterations : 0;
}
