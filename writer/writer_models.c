/* writer_models.c -- save each trained model under DIR/models and hand its bytes back to the reader.
 *
 * Only writer 0 saves models and sends "saved"; other shards (which get every message too) only note which
 * iterations are trained, so that they, like writer 0, ask for the next job once every model exists. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gm_log.h"
#include "gm_wire.h"
#include "writer.h"

/* Writes 'len' bytes to 'path' durably: a temporary file, fsync, rename. Returns 0, or -1 with 'err'. */
static int write_file_durably(const char *path, const void *bytes, size_t len, char *err) {
    char tmp[4300];
    if (snprintf(tmp, sizeof tmp, "%s.part", path) >= (int)sizeof tmp) return gm_err(err, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return gm_err(err, "%s: cannot create: %s", tmp, strerror(errno));
    const char *p = bytes;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            gm_err(err, "%s: cannot write: %s", tmp, n < 0 ? strerror(errno) : "no progress");
            close(fd);
            unlink(tmp);
            return -1;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        gm_err(err, "%s: cannot complete: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        gm_err(err, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

void writer_models_take(writer_t *wr, gm_msg_t *msg, const gm_header_t *h) {
    char err[GM_ERR_LEN], dir[4096], path[4200];
    const gm_job_t *job = &wr->job;
    if (job->mode != GM_MODE_TRAIN || h->iteration >= job->iterations || msg->nframes != 2 || gm_msg_size(msg, 1) == 0) {
        gm_log(GM_LOG_WARN, "results: dropped a bad model message (iteration %u, %zu frames)", h->iteration, msg->nframes);
        wr->dropped++;
        return;
    }
    if (wr->model_saved[h->iteration]) {
        wr->duplicates++;
        return;
    }
    if (wr->opt.shard > 0) {
        gm_log(GM_LOG_DEBUG, "model of iteration %u not saved: writer 0 saves the models", h->iteration + 1);
        wr->model_saved[h->iteration] = 1;
        if (++wr->models_saved == job->iterations) writer_request_job(wr);
        return;
    }
    snprintf(dir, sizeof dir, "%s/models", wr->opt.out_dir);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        gm_log(GM_LOG_ERROR, "%s: cannot create: %s", dir, strerror(errno));
        writer_finish(wr, 1);
        return;
    }
    snprintf(path, sizeof path, "%s/iter-%0*u.json", dir, gm_job_iteration_width(job->iterations), h->iteration + 1);
    if (write_file_durably(path, gm_msg_data(msg, 1), gm_msg_size(msg, 1), err) < 0) {
        gm_log(GM_LOG_ERROR, "%s", err);
        writer_finish(wr, 1);
        return;
    }
    void *copy = malloc(gm_msg_size(msg, 1));
    if (!copy) {
        gm_log(GM_LOG_ERROR, "out of memory");
        writer_finish(wr, 1);
        return;
    }
    memcpy(copy, gm_msg_data(msg, 1), gm_msg_size(msg, 1));
    wr->model_saved[h->iteration] = 1;
    wr->models_saved++;
    gm_header_t sh = {.kind = GM_MSG_SAVED, .job = job->id, .iteration = h->iteration};
    writer_send_ack(wr, &sh, copy, gm_msg_size(msg, 1));
    gm_log(GM_LOG_DEBUG, "saved %s", path);
    if (wr->models_saved == job->iterations) writer_request_job(wr); /* the reader moves on to applying them */
}
