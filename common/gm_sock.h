/* gm_sock.h -- a ZeroMQ socket watched by a libuv loop: whole multipart messages in, non-blocking sends out.
 *
 * A uv_poll_t watches the socket's ZMQ_FD. That fd is edge-triggered, so every wake-up drains the socket
 * while ZMQ_EVENTS reports work, and any send or receive made outside the poll callback re-arms a check
 * on the next loop iteration.
 *
 * CURVE security is process-wide: once gm_sock_curve_load has read a key file, every socket this module binds
 * is a CURVE server that admits only peers proving they hold that file's key pair (a ZAP handler on the same
 * loop checks each peer's key), and every socket it connects is a CURVE client with that pair. A peer without
 * the key never completes the ZeroMQ handshake, so it can neither send nor receive a message. Refused and
 * failed handshakes are logged as warnings (the 1st, 10th, 100th... of each socket); connected sockets are
 * watched without a key file too, so a stage run without --curve says why a secured reader does not answer. */
#ifndef GM_SOCK_H
#define GM_SOCK_H

#include <uv.h>

#include "gm_msg.h"

typedef struct gm_sock gm_sock_t;

/* A tcp peer whose host answers nothing for about this long is disconnected: when idle (TCP keepalive, every
 * socket), or with data in flight (gm_sock_set_dead_peer_timeout, the sockets that push tasks to workers). */
#define GM_SOCK_DEAD_PEER_MS 8000

/* Called with each received message; the callback owns 'msg'. */
typedef void (*gm_sock_recv_cb)(gm_sock_t *sock, gm_msg_t *msg, void *arg);
/* Called when the socket can take a message and the owner asked for it with gm_sock_want_writable. */
typedef void (*gm_sock_writable_cb)(gm_sock_t *sock, void *arg);

/* Reads the CURVE key file 'path' (made by `gridmill keygen`: `public-key = Z85` and `secret-key = Z85` lines,
 * '#' comments, as CZMQ's secret certificates) and secures every socket bound or connected from now on with
 * it. The file must be a regular file of at most 4 KiB that other users cannot read, its public key must
 * belong to its secret key, and ZeroMQ must have CURVE. Returns 0, or -1 with 'err' naming the file. */
int gm_sock_curve_load(const char *path, char *err);
/* Returns 1 when a key file was loaded (every socket is CURVE-secured), else 0. */
int gm_sock_curve_enabled(void);
/* Creates a socket of ZeroMQ 'type' (ZMQ_PUSH...) on 'loop', named 'name' in messages. Returns NULL with 'err'. */
gm_sock_t *gm_sock_new(uv_loop_t *loop, void *zctx, int type, const char *name, char *err);
/* Sets send and receive high-water marks in messages (0 keeps ZeroMQ's default). Call before bind/connect. */
int gm_sock_set_hwm(gm_sock_t *self, int sndhwm, int rcvhwm);
/* Closes a tcp connection whose sent data stays unacknowledged for 'ms' (TCP_USER_TIMEOUT): for sockets that
 * push to peers that never stop reading for that long, such as workers, so that a vanished host's share of
 * messages stops going nowhere. A peer that stops reading longer (a zero window) is dropped too. */
int gm_sock_set_dead_peer_timeout(gm_sock_t *self, int ms);
/* Sets the largest inbound frame accepted; a peer sending a bigger one is disconnected. */
int gm_sock_set_maxmsgsize(gm_sock_t *self, int64_t bytes);
/* Binds or connects to 'endpoint', as a CURVE server or client when a key file is loaded. A socket is bound or
 * connected, not both. Returns 0, or -1 with 'err' naming the endpoint. */
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
