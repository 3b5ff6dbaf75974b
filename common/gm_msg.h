/* gm_msg.h -- a multipart message: a list of ZeroMQ frames that can be sent without copying. */
#ifndef GM_MSG_H
#define GM_MSG_H

#include <stddef.h>
#include <zmq.h>

typedef struct {
    size_t nframes;    /* frames in use */
    size_t cap;        /* frames allocated */
    zmq_msg_t *frames; /* owned */
} gm_msg_t;

/* Returns a new empty message, or NULL when out of memory. The caller owns it. */
gm_msg_t *gm_msg_new(void);
/* Destroys a message and its frames; takes NULL and sets the caller's pointer to NULL. */
void gm_msg_destroy(gm_msg_t **self_p);
/* Appends a copy of 'len' bytes. Returns 0, or -1 when out of memory. */
int gm_msg_add_copy(gm_msg_t *self, const void *data, size_t len);
/* Appends a malloc'd buffer without copying; the message takes ownership and frees it with free().
 * On failure the buffer is freed too. Returns 0, or -1. */
int gm_msg_add_owned(gm_msg_t *self, void *data, size_t len);
/* Appends a copy of frame 'i' of another message (shares the bytes). Returns 0, or -1. */
int gm_msg_add_frame_of(gm_msg_t *self, gm_msg_t *other, size_t i);
/* Returns a copy of every frame (sharing the bytes of large ones), or NULL when out of memory. */
gm_msg_t *gm_msg_dup(gm_msg_t *self);
/* Returns the bytes and size of frame 'i' (which must exist). */
void *gm_msg_data(gm_msg_t *self, size_t i);
size_t gm_msg_size(gm_msg_t *self, size_t i);
/* Returns a new zmq_msg_t slot at the end, initialised empty, for receiving into; NULL when out of memory. */
zmq_msg_t *gm_msg_push_empty(gm_msg_t *self);

#endif
