/* gm_sock.h -- a ZeroMQ socket watched by a libuv loop: whole multipart messages in, non-blocking sends out.
 *
 * A uv_poll_t watches the socket's ZMQ_FD. That fd is edge-triggered, so every wake-up drains the socket
 * while ZMQ_EVENTS reports work, and any send or receive made outside the poll callback re-arms a check
 * on the next loop iteration. */
#ifndef GM_SOCK_H
#define GM_SOCK_H

#include <uv.h>

#include "gm_msg.h"

typedef struct gm_sock gm_sock_t;

/* Called with each received message; the callback owns 'msg'. */
typedef void (*gm_sock_recv_cb)(gm_sock_t *sock, gm_msg_t *msg, void *arg);
/* Called when the socket can take a message and the owner asked for it with gm_sock_want_writable. */
typedef void (*gm_sock_writable_cb)(gm_sock_t *sock, void *arg);

/* Creates a socket of ZeroMQ 'type' (ZMQ_PUSH...) on 'loop', named 'name' in messages. Returns NULL with 'err'. */
gm_sock_t *gm_sock_new(uv_loop_t *loop, void *zctx, int type, const char *name, char *err);
/* Sets send and receive high-water marks in messages (0 keeps ZeroMQ's default). Call before bind/connect. */
int gm_sock_set_hwm(gm_sock_t *self, int sndhwm, int rcvhwm);
/* Sets the largest inbound frame accepted; a peer sending a bigger one is disconnected. */
int gm_sock_set_maxmsgsize(gm_sock_t *self, int64_t bytes);
/* Binds or connects to 'endpoint'. Returns 0, or -1 with 'err' naming the endpoint. */
int gm_sock_bind(gm_sock_t *self, const char *endpoint, char *err);
int gm_sock_connect(gm_sock_t *self, const char *endpoint, char *err);
/* Starts watching: 'recv' gets every message (NULL: never read), 'writable' is called on demand. */
int gm_sock_start(gm_sock_t *self, gm_sock_recv_cb recv, gm_sock_writable_cb writable, void *arg, char *err);
/* Stops (1) or resumes (0) reading messages, for backpressure. */
void gm_sock_pause_recv(gm_sock_t *self, int paused);
/* Asks (1) or stops asking (0) for the writable callback. */
void gm_sock_want_writable(gm_sock_t *self, int want);
/* Sends a message without blocking. Returns 0 when sent (the message is consumed and *msg_p set to NULL),
 * 1 when the socket would block (the message stays with the caller), or -1 with 'err'. */
int gm_sock_send(gm_sock_t *self, gm_msg_t **msg_p, char *err);
/* Copies endpoint 'advertised' into 'out'; a tcp endpoint on a loopback or wildcard host gets the host of
 * tcp endpoint 'control' instead, so a peer on another machine reaches what the reader advertised. */
void gm_sock_rehost(const char *advertised, const char *control, char *out, size_t cap);
/* Returns the ZeroMQ socket, for options this module does not wrap. */
void *gm_sock_zmq(gm_sock_t *self);
/* Returns the name given at creation. */
const char *gm_sock_name(const gm_sock_t *self);
/* Closes the ZeroMQ socket (dropping unsent messages after 'linger_ms') and the libuv handles; the memory
 * is freed when the loop has closed them. Takes NULL; sets the caller's pointer to NULL. */
void gm_sock_destroy(gm_sock_t **self_p, int linger_ms);

#endif
