/* gm_sock.c -- a ZeroMQ socket watched by a libuv loop: whole multipart messages in, non-blocking sends out. */
#include "gm_sock.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gm_log.h"

#define MAX_FRAMES 8192     /* a message with more frames is dropped */
#define BURST 64            /* messages handled per wake-up before yielding to other handles */
#define KEYFILE_MAX 4096    /* a key file is a few hundred bytes */
#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define MAX_ZAPS 8          /* ZeroMQ contexts with a ZAP handler at once (a stage has one) */
#define HANDSHAKE_EVENTS \
    (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

struct gm_sock {
    uv_loop_t *loop;
    void *zctx;
    void *zsock;
    char name[32];
    gm_sock_t *monitor;     /* PAIR receiving this socket's failed handshakes, or NULL */
    int bound;              /* 1 once bound (a server), 0 once connected (a client) */
    int zap_user;           /* holds a reference on its context's ZAP handler */
    unsigned long failures; /* failed handshakes seen by the monitor */
    uv_poll_t poll;
    uv_idle_t idle;
    int handles_open;
    gm_sock_recv_cb recv_cb;
    gm_sock_writable_cb writable_cb;
    void *arg;
    int paused, want_writable, started, in_process, again, closing;
};

static void process(gm_sock_t *self);
static void on_idle(uv_idle_t *h);

/* Starts the idle handle so the socket is examined on the next loop iteration. */
static void kick(gm_sock_t *self) {
    if (!self->closing && self->started) uv_idle_start(&self->idle, on_idle);
}

static void on_idle(uv_idle_t *h) {
    gm_sock_t *self = h->data;
    uv_idle_stop(h);
    process(self);
}

static void on_poll(uv_poll_t *h, int status, int events) {
    (void)status;
    (void)events;
    process(h->data);
}

static void on_close(uv_handle_t *h) {
    gm_sock_t *self = h->data;
    if (--self->handles_open == 0) free(self);
}

gm_sock_t *gm_sock_new(uv_loop_t *loop, void *zctx, int type, const char *name, char *err) {
    gm_sock_t *self = calloc(1, sizeof *self);
    if (!self) {
        gm_err(err, "%s: out of memory", name);
        return NULL;
    }
    self->loop = loop;
    self->zctx = zctx;
    snprintf(self->name, sizeof self->name, "%s", name);
    self->zsock = zmq_socket(zctx, type);
    if (!self->zsock) {
        gm_err(err, "%s: cannot create socket: %s", name, zmq_strerror(zmq_errno()));
        free(self);
        return NULL;
    }
    int linger = 0;
    zmq_setsockopt(self->zsock, ZMQ_LINGER, &linger, sizeof linger);
    /* TCP keepalive: an idle connection to a host that vanished (no FIN, no RST) is closed by the kernel within
     * about GM_SOCK_DEAD_PEER_MS. Neither ZMTP heartbeats nor TCP_USER_TIMEOUT are used: both also drop a live
     * peer that merely stopped reading for a while (backpressure), losing what was in flight (libzmq issue
     * 3937; Linux aborts a zero window held past the user timeout). A connection with data in flight to a dead
     * host stays until TCP gives up (many minutes), unless the socket sets gm_sock_set_dead_peer_timeout: the
     * sockets that push tasks to workers do. */
    int on = 1, idle = GM_SOCK_DEAD_PEER_MS / 3000 > 0 ? GM_SOCK_DEAD_PEER_MS / 3000 : 1, cnt = 2;
    zmq_setsockopt(self->zsock, ZMQ_TCP_KEEPALIVE, &on, sizeof on);
    zmq_setsockopt(self->zsock, ZMQ_TCP_KEEPALIVE_IDLE, &idle, sizeof idle);
    zmq_setsockopt(self->zsock, ZMQ_TCP_KEEPALIVE_INTVL, &idle, sizeof idle);
    zmq_setsockopt(self->zsock, ZMQ_TCP_KEEPALIVE_CNT, &cnt, sizeof cnt);
    int fd;
    size_t fdlen = sizeof fd;
    if (zmq_getsockopt(self->zsock, ZMQ_FD, &fd, &fdlen) != 0 || uv_poll_init(loop, &self->poll, fd) != 0) {
        gm_err(err, "%s: cannot watch socket: %s", name, zmq_strerror(zmq_errno()));
        zmq_close(self->zsock);
        free(self);
        return NULL;
    }
    uv_idle_init(loop, &self->idle);
    self->poll.data = self;
    self->idle.data = self;
    self->handles_open = 2;
    return self;
}

int gm_sock_set_hwm(gm_sock_t *self, int sndhwm, int rcvhwm) {
    int rc = 0;
    if (sndhwm > 0) rc |= zmq_setsockopt(self->zsock, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm);
    if (rcvhwm > 0) rc |= zmq_setsockopt(self->zsock, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    return rc ? -1 : 0;
}

int gm_sock_set_dead_peer_timeout(gm_sock_t *self, int ms) {
    return zmq_setsockopt(self->zsock, ZMQ_TCP_MAXRT, &ms, sizeof ms) ? -1 : 0;
}

int gm_sock_set_maxmsgsize(gm_sock_t *self, int64_t bytes) {
    return zmq_setsockopt(self->zsock, ZMQ_MAXMSGSIZE, &bytes, sizeof bytes) ? -1 : 0;
}

/* ---- CURVE security: the key pair, the ZAP handler that admits peers, and the handshake monitor ---- */

static struct {
    int on;
    uint8_t public_key[32], secret_key[32];
} curve;

/* One ZAP handler per ZeroMQ context, shared by the sockets bound in it and closed with the last of them. */
typedef struct {
    void *zctx;
    gm_sock_t *sock;
    int users;
    unsigned long refused;
} zap_t;
static zap_t zaps[MAX_ZAPS];

/* Returns 1 when the n-th event of a series should be logged: the 1st, 10th, 100th... */
static int worth_logging(unsigned long n) {
    while (n >= 10 && n % 10 == 0) n /= 10;
    return n == 1;
}

/* Checks that 'value' is a 40-character Z85 key and decodes it into 'key'. Returns 0, or -1. */
static int decode_key(const char *value, uint8_t key[32]) {
    static const char z85[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
    if (strlen(value) != 40 || strspn(value, z85) != 40) return -1;
    return zmq_z85_decode(key, value) ? 0 : -1;
}

/* Cuts leading and trailing blanks off 's' in place; returns the start. */
static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = '\0';
    return s;
}

/* Parses the text of key file 'path' into public and secret Z85 keys (41 bytes each). Returns 0, or -1 with 'err'. */
static int parse_keyfile(const char *path, char *text, char *public_z85, char *secret_z85, char *err) {
    int line_no = 0;
    public_z85[0] = secret_z85[0] = '\0';
    for (char *line = text, *next; line; line = next) {
        line_no++;
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        line = trim(line);
        if (!*line || *line == '#') continue;
        char *eq = strchr(line, '=');
        if (!eq) {
            /* a section name, as "curve" in CZMQ's certificates */
            if (strspn(line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != strlen(line))
                return gm_err(err, "%s: not a key file (line %d: expected 'name = value')", path, line_no);
            continue;
        }
        *eq = '\0';
        char *name = trim(line), *value = trim(eq + 1);
        size_t vlen = strlen(value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value[vlen - 1] = '\0';
            value++;
        }
        char *dest = !strcmp(name, "public-key") ? public_z85 : !strcmp(name, "secret-key") ? secret_z85 : NULL;
        if (!dest) continue; /* metadata */
        uint8_t scratch[32];
        if (*dest) return gm_err(err, "%s: line %d: a second %s", path, line_no, name);
        if (decode_key(value, scratch) < 0)
            return gm_err(err, "%s: line %d: %s is not a 40-character Z85 key", path, line_no, name);
        memcpy(dest, value, 41);
    }
    if (!*secret_z85)
        return gm_err(err, "%s: no secret-key in the key file (make one with 'gridmill keygen FILE')", path);
    return 0;
}

int gm_sock_curve_load(const char *path, char *err) {
    if (!zmq_has("curve")) {
        int major, minor, patch;
        zmq_version(&major, &minor, &patch);
        return gm_err(err, "%s: this ZeroMQ (%d.%d.%d) was built without CURVE security", path, major, minor, patch);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return gm_err(err, "%s: cannot read the key file: %s", path, strerror(errno));
    char text[KEYFILE_MAX + 1], public_z85[41], secret_z85[41], derived[41];
    struct stat st;
    ssize_t got = 0;
    int rc = -1;
    if (fstat(fd, &st) != 0) {
        gm_err(err, "%s: cannot read the key file: %s", path, strerror(errno));
        goto out_close;
    }
    if (!S_ISREG(st.st_mode)) {
        gm_err(err, "%s: not a key file (not a regular file)", path);
        goto out_close;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        gm_err(err, "%s: other users may read this key file (mode %04o): chmod 600 it", path,
               (unsigned)(st.st_mode & 07777));
        goto out_close;
    }
    if (st.st_size > KEYFILE_MAX) {
        gm_err(err, "%s: not a key file (%lld bytes, a key file has fewer than %d)", path, (long long)st.st_size,
               KEYFILE_MAX);
        goto out_close;
    }
    for (ssize_t n; got < KEYFILE_MAX && (n = read(fd, text + got, (size_t)(KEYFILE_MAX - got))) != 0; got += n) {
        if (n < 0 && errno == EINTR) n = 0;
        else if (n < 0) {
            gm_err(err, "%s: cannot read the key file: %s", path, strerror(errno));
            goto out_wipe;
        }
    }
    text[got] = '\0';
    if (memchr(text, '\0', (size_t)got)) {
        gm_err(err, "%s: not a key file (binary data)", path);
        goto out_wipe;
    }
    if (parse_keyfile(path, text, public_z85, secret_z85, err) < 0) goto out_wipe;
    if (zmq_curve_public(derived, secret_z85) != 0) {
        gm_err(err, "%s: cannot derive the public key: %s", path, zmq_strerror(zmq_errno()));
        goto out_wipe;
    }
    if (*public_z85 && strcmp(derived, public_z85) != 0) {
        gm_err(err, "%s: its public-key does not belong to its secret-key", path);
        goto out_wipe;
    }
    zmq_z85_decode(curve.public_key, derived);
    zmq_z85_decode(curve.secret_key, secret_z85);
    curve.on = 1;
    rc = 0;
out_wipe:
    /* leave no copy of the secret on the stack */
    explicit_bzero(text, sizeof text);
    explicit_bzero(secret_z85, sizeof secret_z85);
out_close:
    close(fd);
    return rc;
}

int gm_sock_curve_enabled(void) { return curve.on; }

/* Copies frame 'i' of 'msg' into 'out' as a string (cut to 'cap'), for log lines. */
static void frame_text(gm_msg_t *msg, size_t i, char *out, size_t cap) {
    size_t n = gm_msg_size(msg, i) < cap - 1 ? gm_msg_size(msg, i) : cap - 1;
    const char *p = gm_msg_data(msg, i);
    for (size_t k = 0; k < n; k++) out[k] = p[k] >= 0x20 && p[k] < 0x7f ? p[k] : '?';
    out[n] = '\0';
}

/* Answers one ZAP request (RFC 27): a CURVE peer is admitted when its long-term key is the cluster's. */
static void on_zap(gm_sock_t *sock, gm_msg_t *req, void *arg) {
    zap_t *zap = arg;
    char err[GM_ERR_LEN];
    if (req->nframes < 6) { /* not ZeroMQ's request: nothing sensible to answer */
        gm_msg_destroy(&req);
        return;
    }
    int admit = req->nframes == 7 && gm_msg_size(req, 5) == 5 && !memcmp(gm_msg_data(req, 5), "CURVE", 5) &&
                gm_msg_size(req, 6) == 32 && !memcmp(gm_msg_data(req, 6), curve.public_key, 32);
    gm_msg_t *reply = gm_msg_new();
    if (!reply || gm_msg_add_copy(reply, "1.0", 3) < 0 || gm_msg_add_frame_of(reply, req, 1) < 0 ||
        gm_msg_add_copy(reply, admit ? "200" : "400", 3) < 0 ||
        gm_msg_add_copy(reply, admit ? "OK" : "not this cluster's key", admit ? 2 : 22) < 0 ||
        gm_msg_add_copy(reply, "", 0) < 0 || gm_msg_add_copy(reply, "", 0) < 0 || gm_sock_send(sock, &reply, err) != 0)
        gm_log(GM_LOG_ERROR, "zap: cannot answer an authentication request; the peer will time out");
    gm_msg_destroy(&reply);
    if (!admit && worth_logging(++zap->refused)) {
        char domain[32], address[64], times[48] = "";
        frame_text(req, 2, domain, sizeof domain);
        frame_text(req, 3, address, sizeof address);
        if (zap->refused > 1) snprintf(times, sizeof times, " (%lu times so far)", zap->refused);
        gm_log(GM_LOG_WARN, "%s: refused a peer at %s: its CURVE key is not this cluster's%s", *domain ? domain : "zap",
               address, times);
    }
    gm_msg_destroy(&req);
}

/* Makes sure the context of 'self' has a ZAP handler and takes a reference on it. Returns 0, or -1 with 'err'. */
static int zap_acquire(gm_sock_t *self, char *err) {
    zap_t *free_slot = NULL;
    for (int i = 0; i < MAX_ZAPS; i++) {
        if (zaps[i].sock && zaps[i].zctx == self->zctx) {
            zaps[i].users++;
            self->zap_user = 1;
            return 0;
        }
        if (!zaps[i].sock && !free_slot) free_slot = &zaps[i];
    }
    if (!free_slot) return gm_err(err, "%s: too many ZeroMQ contexts for CURVE authentication", self->name);
    gm_sock_t *zs = gm_sock_new(self->loop, self->zctx, ZMQ_REP, "zap", err);
    if (!zs) return -1;
    if (zmq_bind(zs->zsock, ZAP_ENDPOINT) != 0) {
        gm_err(err, "%s: cannot start CURVE authentication (%s): %s", self->name, ZAP_ENDPOINT,
               zmq_strerror(zmq_errno()));
        gm_sock_destroy(&zs, 0);
        return -1;
    }
    *free_slot = (zap_t){.zctx = self->zctx, .sock = zs, .users = 1};
    if (gm_sock_start(zs, on_zap, NULL, free_slot, err) < 0) {
        gm_sock_destroy(&free_slot->sock, 0);
        return -1;
    }
    self->zap_user = 1;
    return 0;
}

/* Drops a reference on the ZAP handler of 'zctx', closing it with the last one. */
static void zap_release(void *zctx) {
    for (int i = 0; i < MAX_ZAPS; i++) {
        if (zaps[i].sock && zaps[i].zctx == zctx && --zaps[i].users == 0) {
            gm_sock_destroy(&zaps[i].sock, 0);
            zaps[i] = (zap_t){0};
        }
    }
}

/* Says in words why a handshake failed, from a monitor event. Which end notices a mismatch first is a race:
 * the other end sees the connection drop (NO_DETAIL, with an errno). */
static void describe_failure(const gm_sock_t *self, uint16_t event, uint32_t value, const char *ep, char *out,
                             size_t cap) {
    int mismatch = event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH;
    int crypto = event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC;
    char why[96];
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
        snprintf(why, sizeof why, "protocol error 0x%08x", (unsigned)value);
    else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        snprintf(why, sizeof why, "status %u", (unsigned)value);
    else
        snprintf(why, sizeof why, "%s", zmq_strerror((int)value));
    if (self->bound && mismatch)
        snprintf(out, cap, "refused a connection on %s: the peer does not use CURVE (it has no --curve key file)", ep);
    else if (self->bound && crypto)
        snprintf(out, cap, "refused a connection on %s: the peer holds another key file", ep);
    else if (self->bound)
        snprintf(out, cap, "refused a connection on %s: the CURVE handshake failed (%s): a peer without this key file?",
                 ep, why);
    else if (mismatch && curve.on)
        snprintf(out, cap, "%s does not use CURVE security: is that stage run without --curve?", ep);
    else if (mismatch)
        snprintf(out, cap, "%s requires CURVE security: give this stage --curve KEYFILE", ep);
    else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        snprintf(out, cap, "%s refused this stage's CURVE key (%s): does it hold another key file?", ep, why);
    else if (curve.on)
        snprintf(out, cap, "the CURVE handshake with %s failed (%s): does it hold another key file, or none?", ep, why);
    else if (!strncmp(ep, "ipc://", 6)) /* a private ipc:// endpoint never takes CURVE: its stage went away */
        snprintf(out, cap, "the handshake with %s failed (%s): its stage has stopped", ep, why);
    else
        snprintf(out, cap, "the handshake with %s failed (%s): does it require CURVE security (--curve KEYFILE)?", ep,
                 why);
}

/* Takes one event of the socket 'arg' watches: logs the 1st, 10th, 100th... failed handshake. */
static void on_monitor(gm_sock_t *mon, gm_msg_t *msg, void *arg) {
    (void)mon;
    gm_sock_t *self = arg;
    if (msg->nframes == 2 && gm_msg_size(msg, 0) == 6) {
        uint16_t event;
        uint32_t value;
        memcpy(&event, gm_msg_data(msg, 0), sizeof event);
        memcpy(&value, (const char *)gm_msg_data(msg, 0) + 2, sizeof value);
        /* a refusal by the ZAP handler is logged there, with the peer's address */
        int logged_by_zap = self->bound && event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
        if ((event & HANDSHAKE_EVENTS) && !logged_by_zap && worth_logging(++self->failures)) {
            char ep[256], why[512];
            frame_text(msg, 1, ep, sizeof ep);
            describe_failure(self, event, value, ep, why, sizeof why);
            char times[48] = "";
            if (self->failures > 1) snprintf(times, sizeof times, " (%lu times so far)", self->failures);
            gm_log(GM_LOG_WARN, "%s: %s%s", self->name, why, times);
        }
    }
    gm_msg_destroy(&msg);
}

/* Watches the failed handshakes of 'self' through a PAIR socket on the same loop. Returns 0, or -1 with 'err'. */
static int monitor_start(gm_sock_t *self, char *err) {
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://gm-sock-monitor-%p", (void *)self);
    if (zmq_socket_monitor(self->zsock, ep, HANDSHAKE_EVENTS) != 0)
        return gm_err(err, "%s: cannot monitor the socket: %s", self->name, zmq_strerror(zmq_errno()));
    self->monitor = gm_sock_new(self->loop, self->zctx, ZMQ_PAIR, "monitor", err);
    if (!self->monitor) return -1;
    if (zmq_connect(self->monitor->zsock, ep) != 0) {
        gm_err(err, "%s: cannot monitor the socket: %s", self->name, zmq_strerror(zmq_errno()));
        gm_sock_destroy(&self->monitor, 0);
        return -1;
    }
    return gm_sock_start(self->monitor, on_monitor, NULL, self, err);
}

/* Before 'self' binds or connects to 'endpoint': makes it a CURVE server (bound) or client (connected) when a
 * key file is loaded, and watches its handshakes when it is secured or connected. Returns 0, or -1 with 'err'. */
static int secure(gm_sock_t *self, const char *endpoint, char *err) {
    if (curve.on) {
        int server = self->bound, rc = 0;
        if (server) {
            if (!self->zap_user && zap_acquire(self, err) < 0) return -1;
            rc |= zmq_setsockopt(self->zsock, ZMQ_ZAP_DOMAIN, self->name, strlen(self->name));
            rc |= zmq_setsockopt(self->zsock, ZMQ_CURVE_SERVER, &server, sizeof server);
        } else {
            rc |= zmq_setsockopt(self->zsock, ZMQ_CURVE_SERVERKEY, curve.public_key, 32);
            rc |= zmq_setsockopt(self->zsock, ZMQ_CURVE_PUBLICKEY, curve.public_key, 32);
        }
        rc |= zmq_setsockopt(self->zsock, ZMQ_CURVE_SECRETKEY, curve.secret_key, 32);
        if (rc)
            return gm_err(err, "%s: cannot set up CURVE security for %s: %s", self->name, endpoint,
                          zmq_strerror(zmq_errno()));
    }
    if (!self->monitor && (curve.on || !self->bound) && strncmp(endpoint, "inproc://", 9) != 0)
        return monitor_start(self, err);
    return 0;
}

int gm_sock_bind(gm_sock_t *self, const char *endpoint, char *err) {
    self->bound = 1;
    if (secure(self, endpoint, err) < 0) return -1;
    if (zmq_bind(self->zsock, endpoint) != 0)
        return gm_err(err, "%s: cannot bind %s: %s", self->name, endpoint, zmq_strerror(zmq_errno()));
    return 0;
}

int gm_sock_connect(gm_sock_t *self, const char *endpoint, char *err) {
    self->bound = 0;
    if (secure(self, endpoint, err) < 0) return -1;
    if (zmq_connect(self->zsock, endpoint) != 0)
        return gm_err(err, "%s: cannot connect to %s: %s", self->name, endpoint, zmq_strerror(zmq_errno()));
    return 0;
}

int gm_sock_start(gm_sock_t *self, gm_sock_recv_cb recv, gm_sock_writable_cb writable, void *arg, char *err) {
    self->recv_cb = recv;
    self->writable_cb = writable;
    self->arg = arg;
    if (uv_poll_start(&self->poll, UV_READABLE, on_poll) != 0)
        return gm_err(err, "%s: cannot start watching the socket", self->name);
    self->started = 1;
    kick(self);
    return 0;
}

void gm_sock_pause_recv(gm_sock_t *self, int paused) {
    self->paused = paused;
    if (!paused) kick(self);
}

void gm_sock_want_writable(gm_sock_t *self, int want) {
    self->want_writable = want;
    if (want) kick(self);
}

void *gm_sock_zmq(gm_sock_t *self) { return self->zsock; }

const char *gm_sock_name(const gm_sock_t *self) { return self->name; }

int gm_sock_send(gm_sock_t *self, gm_msg_t **msg_p, char *err) {
    gm_msg_t *msg = *msg_p;
    assert(msg && msg->nframes > 0);
    /* The first frame decides: ZeroMQ queues the remaining parts of a started multipart message. */
    for (size_t i = 0; i < msg->nframes; i++) {
        int flags = ZMQ_DONTWAIT | (i + 1 < msg->nframes ? ZMQ_SNDMORE : 0);
        if (zmq_msg_send(&msg->frames[i], self->zsock, flags) < 0) {
            int e = zmq_errno();
            if (e == EAGAIN && i == 0) {
                kick(self);
                return 1;
            }
            gm_err(err, "%s: send failed: %s", self->name, zmq_strerror(e));
            return -1;
        }
    }
    /* zmq_msg_send left every frame empty; gm_msg_destroy closes them. */
    gm_msg_destroy(msg_p);
    kick(self);
    return 0;
}

/* Receives one whole multipart message, or returns NULL when none is waiting or it was dropped. */
static gm_msg_t *recv_msg(gm_sock_t *self) {
    gm_msg_t *msg = gm_msg_new();
    if (!msg) return NULL;
    int more = 1, dropped = 0;
    while (more) {
        zmq_msg_t *part = gm_msg_push_empty(msg);
        if (!part || msg->nframes > MAX_FRAMES) {
            /* keep draining this message's parts, then drop it */
            zmq_msg_t scratch;
            zmq_msg_init(&scratch);
            if (part) {
                msg->nframes--;
                zmq_msg_close(part);
            }
            while (more) {
                if (zmq_msg_recv(&scratch, self->zsock, 0) < 0) break;
                more = zmq_msg_more(&scratch);
            }
            zmq_msg_close(&scratch);
            dropped = 1;
            break;
        }
        if (zmq_msg_recv(part, self->zsock, ZMQ_DONTWAIT) < 0) {
            msg->nframes--;
            zmq_msg_close(part);
            gm_msg_destroy(&msg);
            return NULL; /* EAGAIN on the first part: nothing waiting */
        }
        more = zmq_msg_more(part);
    }
    if (dropped) gm_msg_destroy(&msg);
    return msg;
}

/* Drains the socket while ZeroMQ reports input we want or output room we were asked about. */
static void process(gm_sock_t *self) {
    if (self->in_process) {
        self->again = 1;
        return;
    }
    self->in_process = 1;
    int handled = 0;
    do {
        self->again = 0;
        while (!self->closing && handled < BURST) {
            int events = 0;
            size_t len = sizeof events;
            if (zmq_getsockopt(self->zsock, ZMQ_EVENTS, &events, &len) != 0) break;
            if ((events & ZMQ_POLLIN) && self->recv_cb && !self->paused) {
                gm_msg_t *msg = recv_msg(self);
                handled++;
                if (msg) self->recv_cb(self, msg, self->arg);
                continue;
            }
            if ((events & ZMQ_POLLOUT) && self->want_writable && self->writable_cb) {
                handled++;
                self->writable_cb(self, self->arg);
                continue;
            }
            break;
        }
    } while (self->again && !self->closing && handled < BURST);
    self->in_process = 0;
    if (self->closing) return; /* on_close frees it once the loop has closed both handles */
    if (handled >= BURST) kick(self); /* more may be waiting: come back after other handles ran */
}

void gm_sock_destroy(gm_sock_t **self_p, int linger_ms) {
    assert(self_p);
    gm_sock_t *self = *self_p;
    if (!self) return;
    *self_p = NULL;
    self->closing = 1;
    zmq_setsockopt(self->zsock, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
    zmq_close(self->zsock);
    self->zsock = NULL;
    gm_sock_destroy(&self->monitor, 0);
    if (self->zap_user) zap_release(self->zctx);
    uv_poll_stop(&self->poll);
    uv_idle_stop(&self->idle);
    uv_close((uv_handle_t *)&self->poll, on_close);
    uv_close((uv_handle_t *)&self->idle, on_close);
}

/* Splits "tcp://host:port" into its host part (start and length). Returns 0, or -1 if not tcp. */
static int tcp_host(const char *ep, const char **host, size_t *len) {
    if (strncmp(ep, "tcp://", 6) != 0) return -1;
    const char *h = ep + 6, *colon = strrchr(h, ':');
    if (!colon) return -1;
    *host = h;
    *len = (size_t)(colon - h);
    return 0;
}

void gm_sock_rehost(const char *advertised, const char *control, char *out, size_t cap) {
    const char *ah, *ch;
    size_t al, cl;
    snprintf(out, cap, "%s", advertised);
    if (tcp_host(advertised, &ah, &al) < 0 || tcp_host(control, &ch, &cl) < 0) return;
    int local = (al == 9 && !strncmp(ah, "127.0.0.1", 9)) || (al == 9 && !strncmp(ah, "localhost", 9)) ||
                (al == 7 && !strncmp(ah, "0.0.0.0", 7)) || (al == 1 && *ah == '*');
    if (!local) return;
    snprintf(out, cap, "tcp://%.*s%s", (int)cl, ch, ah + al);
}
