/* gm_msg.c -- a multipart message: a list of ZeroMQ frames that can be sent without copying. */
#include "gm_msg.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

gm_msg_t *gm_msg_new(void) { return calloc(1, sizeof(gm_msg_t)); }

void gm_msg_destroy(gm_msg_t **self_p) {
    assert(self_p);
    gm_msg_t *self = *self_p;
    if (!self) return;
    for (size_t i = 0; i < self->nframes; i++) zmq_msg_close(&self->frames[i]);
    free(self->frames);
    free(self);
    *self_p = NULL;
}

zmq_msg_t *gm_msg_push_empty(gm_msg_t *self) {
    if (self->nframes == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 4;
        zmq_msg_t *f = malloc(cap * sizeof *f);
        if (!f) return NULL;
        for (size_t i = 0; i < self->nframes; i++) { /* zmq_msg_t may not be moved with memcpy */
            zmq_msg_init(&f[i]);
            zmq_msg_move(&f[i], &self->frames[i]);
            zmq_msg_close(&self->frames[i]);
        }
        free(self->frames);
        self->frames = f;
        self->cap = cap;
    }
    zmq_msg_t *m = &self->frames[self->nframes++];
    zmq_msg_init(m);
    return m;
}

int gm_msg_add_copy(gm_msg_t *self, const void *data, size_t len) {
    zmq_msg_t *m = gm_msg_push_empty(self);
    if (!m) return -1;
    if (zmq_msg_init_size(m, len) != 0) {
        self->nframes--;
        return -1;
    }
    if (len) memcpy(zmq_msg_data(m), data, len);
    return 0;
}

/* Frees a buffer handed to ZeroMQ by gm_msg_add_owned. */
static void free_owned(void *data, void *hint) {
    (void)hint;
    free(data);
}

int gm_msg_add_owned(gm_msg_t *self, void *data, size_t len) {
    zmq_msg_t *m = gm_msg_push_empty(self);
    if (!m) {
        free(data);
        return -1;
    }
    if (zmq_msg_init_data(m, data, len, free_owned, NULL) != 0) {
        self->nframes--;
        free(data);
        return -1;
    }
    return 0;
}

int gm_msg_add_frame_of(gm_msg_t *self, gm_msg_t *other, size_t i) {
    zmq_msg_t *m = gm_msg_push_empty(self);
    if (!m) return -1;
    if (zmq_msg_copy(m, &other->frames[i]) != 0) {
        self->nframes--;
        return -1;
    }
    return 0;
}

void *gm_msg_data(gm_msg_t *self, size_t i) { return zmq_msg_data(&self->frames[i]); }

size_t gm_msg_size(gm_msg_t *self, size_t i) { return zmq_msg_size(&self->frames[i]); }

gm_msg_t *gm_msg_dup(gm_msg_t *self) {
    gm_msg_t *copy = gm_msg_new();
    for (size_t i = 0; copy && i < self->nframes; i++)
        if (gm_msg_add_frame_of(copy, self, i) < 0) gm_msg_destroy(&copy);
    return copy;
}
