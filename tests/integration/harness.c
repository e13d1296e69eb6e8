/*
 * harness.c - broker process control, raw TCP clients and a small STOMP frame
 * reader for the integration suites (see harness.h for the contract).
 *
 * The frame reader is deliberately independent of src/stomp: it accepts what
 * the spec allows a server to send (LF or CRLF lines, content-length bodies with
 * NULs, heart-beat EOLs between frames) and decodes 1.1/1.2 header escapes.
 * Single-threaded; everything allocated is kept in a registry freed by h_fini().
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---------------------------------------------------------------- registry */

/* Everything handed out is remembered here and released by h_fini(). */
struct reg_list {
    void **items;
    size_t n, cap;
};

static struct reg_list reg_mem, reg_frames;
static struct h_broker *reg_brokers[32];
static size_t reg_nbrokers;
static struct h_conn *reg_conns[512];
static size_t reg_nconns;

static void reg_push(struct reg_list *l, void *p)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        void **items = realloc(l->items, cap * sizeof *items);
        cr_assert(items != NULL, "harness: out of memory");
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = p;
}

static void *reg_keep(void *p)
{
    cr_assert(p != NULL, "harness: out of memory");
    reg_push(&reg_mem, p);
    return p;
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    cr_assert(p != NULL, "harness: out of memory");
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = xcalloc(1, n + 1);
    memcpy(p, s, n);
    return p;
}

const char *h_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0, "harness: vasprintf failed");
    return reg_keep(s);
}

uint64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void h_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* $STAMPEDE_TEST_BROKER, when set, wins over $STAMPEDE_BIN: meson sets
 * STAMPEDE_BIN per test (to this build's binary) and a per-test variable beats
 * the outer environment, so scripts/dev.sh runs the suites against another
 * build's broker (ThreadSanitizer) through this one. */
const char *h_bin(void)
{
    const char *bin = getenv("STAMPEDE_TEST_BROKER");
    if (bin == NULL || bin[0] == '\0')
        bin = getenv("STAMPEDE_BIN");
    cr_assert(bin != NULL && bin[0] != '\0', "STAMPEDE_BIN is not set (run through meson test)");
    return bin;
}

void h_init(void)
{
    signal(SIGPIPE, SIG_IGN);
    (void)h_bin();
}

static void frame_free(struct h_frame *f);

/* Cleanups other harness files registered (h_at_fini), run first by h_fini. */
static void (*fini_hooks[8])(void);
static size_t nfini_hooks;

void h_at_fini(void (*fn)(void))
{
    for (size_t i = 0; i < nfini_hooks; i++)
        if (fini_hooks[i] == fn)
            return;
    cr_assert(nfini_hooks < 8, "harness: too many h_at_fini hooks");
    fini_hooks[nfini_hooks++] = fn;
}

void h_fini(void)
{
    while (nfini_hooks > 0)
        fini_hooks[--nfini_hooks]();
    for (size_t i = 0; i < reg_nbrokers; i++) {
        struct h_broker *b = reg_brokers[i];
        if (!b->exited && b->pid > 0) {
            kill(b->pid, SIGKILL);
            waitpid(b->pid, &b->status, 0);
            b->exited = true;
        }
        if (getenv("ITEST_KEEP_LOGS") == NULL)
            unlink(b->log_path);
        free(b);
    }
    reg_nbrokers = 0;
    for (size_t i = 0; i < reg_nconns; i++) {
        struct h_conn *c = reg_conns[i];
        if (c->fd >= 0)
            close(c->fd);
        free(c->buf);
        free(c);
    }
    reg_nconns = 0;
    for (size_t i = 0; i < reg_frames.n; i++)
        frame_free(reg_frames.items[i]);
    free(reg_frames.items);
    reg_frames = (struct reg_list){0};
    for (size_t i = 0; i < reg_mem.n; i++)
        free(reg_mem.items[i]);
    free(reg_mem.items);
    reg_mem = (struct reg_list){0};
}

/* ----------------------------------------------------------------- process */

static char *read_file_all(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return reg_keep(xstrndup("", 0));
    size_t cap = 4096, len = 0;
    char *s = xcalloc(1, cap);
    for (;;) {
        if (cap - len < 1024) {
            cap *= 2;
            s = realloc(s, cap);
            cr_assert(s != NULL);
        }
        size_t n = fread(s + len, 1, cap - len - 1, fp);
        if (n == 0)
            break;
        len += n;
    }
    s[len] = '\0';
    fclose(fp);
    return reg_keep(s);
}

const char *h_broker_log(struct h_broker *b)
{
    return read_file_all(b->log_path);
}

/* In the child: drop the harness's own STAMPEDE_* variables (STAMPEDE_BIN) so
 * the broker sees only what the test asks for, then add `env`. */
static void child_env(const char *const *env)
{
    for (int guard = 0; guard < 1000; guard++) {
        char *victim = NULL;
        for (char **e = environ; e && *e; e++) {
            if (strncmp(*e, "STAMPEDE_", 9) == 0) {
                victim = *e;
                break;
            }
        }
        if (victim == NULL)
            break;
        char name[256];
        size_t n = strcspn(victim, "=");
        if (n >= sizeof name)
            n = sizeof name - 1;
        memcpy(name, victim, n);
        name[n] = '\0';
        unsetenv(name);
    }
    for (size_t i = 0; env && env[i]; i++)
        putenv((char *)env[i]);
}

pid_t h_spawn(const char *const *argv, const char *const *env, int out_fd, int err_fd)
{
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(out_fd, 1);
        dup2(err_fd, 2);
        signal(SIGPIPE, SIG_DFL);
        child_env(env);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Parse every "listening on stomp://HOST:PORT" line in the log. */
static int parse_ports(const char *log, int *ports, int max)
{
    int n = 0;
    const char *p = log;
    while (n < max && (p = strstr(p, "listening on ")) != NULL) {
        p += strlen("listening on ");
        const char *eol = strchr(p, '\n');
        if (eol == NULL)
            break; /* line not complete yet */
        const char *colon = NULL;
        for (const char *q = p; q < eol; q++)
            if (*q == ':')
                colon = q;
        if (colon != NULL && colon + 1 < eol)
            ports[n++] = atoi(colon + 1);
        p = eol;
    }
    return n;
}

static int make_log(char *path, size_t n)
{
    snprintf(path, n, "/tmp/stampede-itest-%d-XXXXXX", (int)getpid());
    int fd = mkstemp(path);
    cr_assert(fd >= 0, "mkstemp: %s", strerror(errno));
    return fd;
}

struct h_broker *h_broker_start_ex(int workers, bool listen, const char *const *args,
                                   const char *const *env)
{
    cr_assert(reg_nbrokers < 32, "harness: too many brokers");
    struct h_broker *b = xcalloc(1, sizeof *b);
    reg_brokers[reg_nbrokers++] = b;
    const char *argv[64];
    size_t n = 0;
    char wbuf[16];
    snprintf(wbuf, sizeof wbuf, "%d", workers);
    argv[n++] = h_bin();
    if (listen) {
        argv[n++] = "--listen";
        argv[n++] = "stomp://127.0.0.1:0";
    }
    if (workers > 0) {
        argv[n++] = "--workers";
        argv[n++] = wbuf;
    }
    /* Listeners are logged one by one: wait for as many as the flags name
     * (--listen URL or --listen=URL), not only the first. */
    int want = listen ? 1 : 0;
    for (size_t i = 0; args && args[i] && n < 63; i++) {
        if (listen && strncmp(args[i], "--listen", 8) == 0 &&
            (args[i][8] == '\0' || args[i][8] == '='))
            want++;
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    int fd = make_log(b->log_path, sizeof b->log_path);
    b->pid = h_spawn(argv, env, fd, fd);
    close(fd);
    uint64_t deadline = h_now_ms() + 5000;
    while (h_now_ms() < deadline) {
        const char *log = h_broker_log(b);
        b->nports = parse_ports(log, b->ports, H_MAX_LISTENERS);
        if (b->nports > 0 && b->nports >= want && (listen || strstr(log, "\n") != NULL))
            break;
        int st;
        if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
            b->exited = true;
            b->status = st;
            cr_assert_fail("broker exited at start (status 0x%x); log:\n%s", st, log);
        }
        h_sleep_ms(5);
    }
    cr_assert(b->nports > 0, "broker did not log 'listening on' within 5 s; log:\n%s",
              h_broker_log(b));
    /* With several listeners from the environment, give the others a moment. */
    if (!listen) {
        uint64_t until = h_now_ms() + 300;
        while (h_now_ms() < until) {
            b->nports = parse_ports(h_broker_log(b), b->ports, H_MAX_LISTENERS);
            h_sleep_ms(10);
        }
    }
    b->port = b->ports[0];
    cr_assert(b->port > 0 && b->port < 65536, "bad port in log:\n%s", h_broker_log(b));
    return b;
}

static int wait_exit(pid_t pid, int *status, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (h_now_ms() >= deadline)
            return -1;
        h_sleep_ms(5);
    }
}

int h_broker_stop_sig(struct h_broker *b, int sig, int timeout_ms)
{
    if (!b->exited) {
        kill(b->pid, sig);
        if (wait_exit(b->pid, &b->status, timeout_ms) != 0) {
            kill(b->pid, SIGKILL);
            waitpid(b->pid, &b->status, 0);
            b->exited = true;
            return -2;
        }
        b->exited = true;
    }
    if (WIFEXITED(b->status))
        return WEXITSTATUS(b->status);
    return -1;
}

void h_broker_stop_ok(struct h_broker *b)
{
    int rc = h_broker_stop_sig(b, SIGTERM, 5000);
    cr_assert(rc == 0, "broker did not exit 0 on SIGTERM within 5 s (rc %d%s, signal %d); log:\n%s",
              rc, rc == -2 ? " = timeout" : "", WIFSIGNALED(b->status) ? WTERMSIG(b->status) : 0,
              h_broker_log(b));
}

bool h_broker_alive(struct h_broker *b)
{
    if (b->exited)
        return false;
    int st;
    if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
        b->exited = true;
        b->status = st;
        return false;
    }
    return true;
}

int h_run(const char *const *args, const char *const *env, int timeout_ms, char **out, char **err)
{
    char opath[128], epath[128];
    int ofd = make_log(opath, sizeof opath);
    int efd = make_log(epath, sizeof epath);
    const char *argv[64];
    size_t n = 0;
    argv[n++] = h_bin();
    for (size_t i = 0; args && args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = h_spawn(argv, env, ofd, efd);
    close(ofd);
    close(efd);
    int st = 0, rc;
    if (wait_exit(pid, &st, timeout_ms) != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        rc = -2;
    } else {
        rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }
    if (out)
        *out = read_file_all(opath);
    if (err)
        *err = read_file_all(epath);
    unlink(opath);
    unlink(epath);
    return rc;
}

/* ------------------------------------------------------------- connections */

static uint32_t source_ip; /* network order; 0: the kernel's choice */

void h_set_source(const char *ip)
{
    struct in_addr a = {0};
    if (ip)
        cr_assert(inet_pton(AF_INET, ip, &a) == 1, "h_set_source: bad address %s", ip);
    source_ip = a.s_addr;
}

struct h_conn *h_dial_port(int port, int rcvbuf)
{
    cr_assert(reg_nconns < 512, "harness: too many connections");
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (source_ip) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = source_ip;
        cr_assert(bind(fd, (struct sockaddr *)&src, sizeof src) == 0, "bind the source: %s",
                  strerror(errno));
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    if (r != 0) {
        cr_assert(errno == EINPROGRESS, "connect to port %d: %s", port, strerror(errno));
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        r = poll(&pfd, 1, 3000);
        cr_assert(r == 1, "connect to port %d timed out", port);
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        cr_assert(soerr == 0, "connect to port %d: %s", port, strerror(soerr));
    }
    struct h_conn *c = xcalloc(1, sizeof *c);
    c->fd = fd;
    c->cap = 65536;
    c->buf = xcalloc(1, c->cap);
    reg_conns[reg_nconns++] = c;
    return c;
}

struct h_conn *h_dial(struct h_broker *b)
{
    return h_dial_port(b->port, 0);
}

void h_close(struct h_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->closed = c->closed ? c->closed : 1;
}

void h_reset(struct h_conn *c)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (c->fd >= 0)
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    h_close(c);
}

int h_send_raw(struct h_conn *c, const void *data, size_t len)
{
    const char *p = data;
    uint64_t deadline = h_now_ms() + 3000;
    if (c->fd < 0)
        return -EBADF;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
        uint64_t now = h_now_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
        poll(&pfd, 1, (int)(deadline - now));
    }
    return 0;
}

void h_send(struct h_conn *c, const void *data, size_t len)
{
    int r = h_send_raw(c, data, len);
    cr_assert(r == 0, "send of %zu bytes failed: %s", len, strerror(-r));
}

void h_sendz(struct h_conn *c, const char *frame)
{
    h_send(c, frame, strlen(frame) + 1);
}

void h_sendf(struct h_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0);
    int r = h_send_raw(c, s, (size_t)n + 1);
    cr_assert(r == 0, "send of frame failed: %s: %.60s", strerror(-r), s);
    free(s);
}

/* ------------------------------------------------------------ frame reader */

static void frame_free(struct h_frame *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->nheaders; i++) {
        free(f->names[i]);
        free(f->values[i]);
    }
    free(f->names);
    free(f->values);
    free(f->cmd);
    free(f->body);
    free(f);
}

/* Decode 1.1/1.2 escapes; returns false on an undefined escape. */
static bool unescape(char *s, size_t *len, int version)
{
    size_t o = 0;
    for (size_t i = 0; i < *len; i++) {
        if (s[i] != '\\') {
            s[o++] = s[i];
            continue;
        }
        if (++i == *len)
            return false;
        switch (s[i]) {
        case 'n':
            s[o++] = '\n';
            break;
        case 'c':
            s[o++] = ':';
            break;
        case '\\':
            s[o++] = '\\';
            break;
        case 'r':
            if (version < 12)
                return false;
            s[o++] = '\r';
            break;
        default:
            return false;
        }
    }
    *len = o;
    s[o] = '\0';
    return true;
}

/* Next line [start, *end) (without EOL) from pos; returns the position after the
 * EOL, or 0 when the line is not complete. */
static size_t next_line(const char *buf, size_t pos, size_t len, size_t *end)
{
    const char *nl = memchr(buf + pos, '\n', len - pos);
    if (nl == NULL)
        return 0;
    size_t e = (size_t)(nl - buf);
    *end = (e > pos && buf[e - 1] == '\r') ? e - 1 : e;
    return e + 1;
}

static void note_eol(struct h_conn *c)
{
    c->eol_times[c->eols % 64] = h_now_ms();
    c->eols++;
}

/* 1: frame in *out, 0: need more bytes. Asserts on malformed server output. */
static int parse_frame(struct h_conn *c, struct h_frame **out)
{
    char *buf = c->buf;
    size_t pos = c->off, len = c->len;
    while (pos < len) {
        if (buf[pos] == '\n') {
            note_eol(c);
            pos++;
        } else if (buf[pos] == '\r' && pos + 1 < len && buf[pos + 1] == '\n') {
            note_eol(c);
            pos += 2;
        } else {
            break;
        }
    }
    c->off = pos;
    if (pos >= len || (buf[pos] == '\r' && pos + 1 >= len))
        return 0;
    size_t end, next = next_line(buf, pos, len, &end);
    if (next == 0)
        return 0;
    struct h_frame *f = xcalloc(1, sizeof *f);
    f->cmd = xstrndup(buf + pos, end - pos);
    size_t cap = 16;
    f->names = xcalloc(cap, sizeof(char *));
    f->values = xcalloc(cap, sizeof(char *));
    bool decode = c->version >= 11 && strcmp(f->cmd, "CONNECTED") != 0;
    long long clen = -1;
    for (;;) {
        pos = next;
        next = next_line(buf, pos, len, &end);
        if (next == 0)
            goto need_more;
        if (end == pos)
            break;
        const char *colon = memchr(buf + pos, ':', end - pos);
        cr_assert(colon != NULL, "broker sent a header line without ':' in %s: %.*s", f->cmd,
                  (int)(end - pos), buf + pos);
        if (f->nheaders == cap) {
            cap *= 2;
            f->names = realloc(f->names, cap * sizeof(char *));
            f->values = realloc(f->values, cap * sizeof(char *));
            cr_assert(f->names && f->values);
        }
        size_t nl = (size_t)(colon - (buf + pos)), vl = end - pos - nl - 1;
        char *name = xstrndup(buf + pos, nl), *value = xstrndup(colon + 1, vl);
        if (decode) {
            cr_assert(unescape(name, &nl, c->version), "broker sent a bad escape in header %s",
                      name);
            cr_assert(unescape(value, &vl, c->version), "broker sent a bad escape in header %s: %s",
                      name, value);
        }
        if (clen < 0 && strcmp(name, "content-length") == 0) {
            char *ep;
            clen = strtoll(value, &ep, 10);
            cr_assert(*ep == '\0' && clen >= 0, "broker sent content-length '%s'", value);
        }
        f->names[f->nheaders] = name;
        f->values[f->nheaders++] = value;
    }
    size_t body = next, body_end;
    if (clen >= 0) {
        if (len - body < (size_t)clen + 1)
            goto need_more;
        body_end = body + (size_t)clen;
        cr_assert(buf[body_end] == '\0', "broker's %s body is not followed by NUL", f->cmd);
    } else {
        const char *nul = memchr(buf + body, '\0', len - body);
        if (nul == NULL)
            goto need_more;
        body_end = (size_t)(nul - buf);
    }
    f->body_len = body_end - body;
    f->body = xstrndup(buf + body, f->body_len);
    c->off = body_end + 1;
    reg_push(&reg_frames, f);
    *out = f;
    return 1;
need_more:
    frame_free(f);
    return 0;
}

static void make_room(struct h_conn *c)
{
    if (c->off > 0 && (c->off == c->len || c->off > c->cap / 2)) {
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->cap - c->len < 16384) {
        c->cap *= 2;
        c->buf = realloc(c->buf, c->cap);
        cr_assert(c->buf != NULL, "harness: out of memory");
    }
}

/* Read once (waiting up to ms). 1 read some, 0 timeout, -1 closed. */
static int fill(struct h_conn *c, int ms)
{
    if (c->closed || c->fd < 0)
        return -1;
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int r = poll(&pfd, 1, ms < 0 ? 0 : ms);
    if (r <= 0)
        return 0;
    make_room(c);
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
    if (n > 0) {
        c->len += (size_t)n;
        return 1;
    }
    if (n == 0) {
        c->closed = 1;
        return -1;
    }
    if (errno == EAGAIN || errno == EINTR)
        return 0;
    c->closed = 2;
    return -1;
}

struct h_frame *h_read(struct h_conn *c, int timeout_ms)
{
    if (c->nstash > 0) {
        struct h_frame *f = c->stash[0];
        memmove(c->stash, c->stash + 1, --c->nstash * sizeof c->stash[0]);
        return f;
    }
    uint64_t deadline = h_now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        struct h_frame *f = NULL;
        if (parse_frame(c, &f) == 1)
            return f;
        uint64_t now = h_now_ms();
        int left = now >= deadline ? 0 : (int)(deadline - now);
        int r = fill(c, left);
        if (r < 0)
            return NULL;
        if (r == 0 && left == 0)
            return NULL;
    }
}

const char *h_hdr(const struct h_frame *f, const char *name)
{
    for (size_t i = 0; f && i < f->nheaders; i++)
        if (strcmp(f->names[i], name) == 0)
            return f->values[i];
    return NULL;
}

size_t h_hdr_count(const struct h_frame *f, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; f && i < f->nheaders; i++)
        n += strcmp(f->names[i], name) == 0;
    return n;
}

const char *h_show(const struct h_frame *f)
{
    if (f == NULL)
        return "(nothing)";
    size_t cap = 512, len = 0;
    char *s = xcalloc(1, cap);
    len += (size_t)snprintf(s, cap, "%s", f->cmd);
    for (size_t i = 0; i < f->nheaders && len < cap - 1; i++)
        len += (size_t)snprintf(s + len, cap - len, " %s:%s", f->names[i], f->values[i]);
    if (len < cap - 1)
        snprintf(s + len, cap - len, " | %.*s", (int)(f->body_len > 80 ? 80 : f->body_len),
                 f->body);
    return reg_keep(s);
}

static const char *closed_text(const struct h_conn *c)
{
    return c->closed == 1 ? "connection closed (EOF)" : c->closed ? "connection reset" : "timeout";
}

struct h_frame *h_expect(struct h_conn *c, const char *cmd, int timeout_ms)
{
    struct h_frame *f = h_read(c, timeout_ms);
    cr_assert(f != NULL, "expected %s, got %s", cmd, closed_text(c));
    cr_assert(strcmp(f->cmd, cmd) == 0, "expected %s, got %s", cmd, h_show(f));
    return f;
}

struct h_frame *h_expect_msg(struct h_conn *c, const char *body)
{
    struct h_frame *f = h_expect(c, "MESSAGE", H_WAIT);
    cr_assert(f->body_len == strlen(body) && memcmp(f->body, body, f->body_len) == 0,
              "expected MESSAGE '%s', got %s", body, h_show(f));
    return f;
}

/* Read frames until one that is not a MESSAGE, stashing the MESSAGEs. */
static struct h_frame *read_past_messages(struct h_conn *c, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        struct h_frame *f = NULL;
        while (parse_frame(c, &f) != 1) {
            uint64_t now = h_now_ms();
            if (now >= deadline || fill(c, (int)(deadline - now)) < 0)
                return NULL;
        }
        if (strcmp(f->cmd, "MESSAGE") != 0)
            return f;
        cr_assert(c->nstash < sizeof c->stash / sizeof c->stash[0],
                  "harness: more than %zu MESSAGEs while waiting for a RECEIPT",
                  sizeof c->stash / sizeof c->stash[0]);
        c->stash[c->nstash++] = f;
    }
}

void h_expect_receipt(struct h_conn *c, const char *id)
{
    struct h_frame *f = read_past_messages(c, H_WAIT);
    cr_assert(f != NULL, "expected RECEIPT %s, got %s", id, closed_text(c));
    cr_assert(strcmp(f->cmd, "RECEIPT") == 0, "expected RECEIPT %s, got %s", id, h_show(f));
    const char *rid = h_hdr(f, "receipt-id");
    cr_assert(rid != NULL && strcmp(rid, id) == 0, "expected RECEIPT receipt-id:%s, got %s", id,
              h_show(f));
}

bool h_wait_closed(struct h_conn *c, int ms, struct h_frame **got)
{
    uint64_t deadline = h_now_ms() + (uint64_t)ms;
    if (got)
        *got = NULL;
    if (c->nstash > 0) {
        if (got)
            *got = h_read(c, 0);
        return false;
    }
    for (;;) {
        struct h_frame *f = NULL;
        if (parse_frame(c, &f) == 1) {
            if (got)
                *got = f;
            return false;
        }
        uint64_t now = h_now_ms();
        if (now >= deadline)
            return false;
        if (fill(c, (int)(deadline - now)) < 0)
            return true;
    }
}

struct h_frame *h_expect_error(struct h_conn *c, const char *receipt_id)
{
    struct h_frame *f = h_read(c, H_WAIT);
    cr_assert(f != NULL, "expected ERROR, got %s", closed_text(c));
    cr_assert(strcmp(f->cmd, "ERROR") == 0, "expected ERROR, got %s", h_show(f));
    cr_assert(h_hdr(f, "message") != NULL, "ERROR without a message header: %s", h_show(f));
    cr_assert(f->body_len > 0, "ERROR without a body explaining: %s", h_show(f));
    if (receipt_id != NULL) {
        const char *rid = h_hdr(f, "receipt-id");
        cr_assert(rid != NULL && strcmp(rid, receipt_id) == 0,
                  "expected ERROR receipt-id:%s, got %s", receipt_id, h_show(f));
    }
    struct h_frame *more = NULL;
    cr_assert(h_wait_closed(c, 3000, &more), "connection not closed within 3 s after ERROR (%s)",
              more ? h_show(more) : "still open");
    return f;
}

struct h_frame *h_expect_error_msg(struct h_conn *c, const char *receipt_id, const char *message)
{
    struct h_frame *f = h_expect_error(c, receipt_id);
    cr_assert(strcmp(h_hdr(f, "message"), message) == 0, "expected ERROR message:%s, got %s",
              message, h_show(f));
    return f;
}

void h_expect_silence(struct h_conn *c, int ms)
{
    struct h_frame *f = h_read(c, ms);
    cr_assert(f == NULL, "expected nothing for %d ms, got %s", ms, h_show(f));
    cr_assert(c->closed == 0, "expected nothing for %d ms, got %s", ms, closed_text(c));
}

/* ------------------------------------------------------------------- STOMP */

struct h_frame *h_stomp_connect(struct h_conn *c, const char *accept_version, const char *login,
                                const char *passcode, const char *heart_beat, bool use_stomp)
{
    char frame[1024];
    int n = snprintf(frame, sizeof frame, "%s\nhost:/\n", use_stomp ? "STOMP" : "CONNECT");
    if (accept_version)
        n += snprintf(frame + n, sizeof frame - (size_t)n, "accept-version:%s\n", accept_version);
    if (login)
        n += snprintf(frame + n, sizeof frame - (size_t)n, "login:%s\n", login);
    if (passcode)
        n += snprintf(frame + n, sizeof frame - (size_t)n, "passcode:%s\n", passcode);
    if (heart_beat)
        n += snprintf(frame + n, sizeof frame - (size_t)n, "heart-beat:%s\n", heart_beat);
    snprintf(frame + n, sizeof frame - (size_t)n, "\n");
    h_sendz(c, frame);
    struct h_frame *f = h_read(c, H_WAIT);
    if (f && strcmp(f->cmd, "CONNECTED") == 0) {
        const char *v = h_hdr(f, "version");
        c->version = (v == NULL || strcmp(v, "1.0") == 0) ? 10 : strcmp(v, "1.1") == 0 ? 11 : 12;
    }
    return f;
}

struct h_conn *h_client_login(struct h_broker *b, const char *version, const char *login,
                              const char *passcode)
{
    struct h_conn *c = h_dial(b);
    bool v10 = strcmp(version, "1.0") == 0;
    struct h_frame *f = h_stomp_connect(c, v10 ? NULL : version, login, passcode, NULL, false);
    cr_assert(f != NULL, "no reply to CONNECT (%s)", closed_text(c));
    cr_assert(strcmp(f->cmd, "CONNECTED") == 0, "CONNECT got %s", h_show(f));
    const char *v = h_hdr(f, "version");
    if (v10)
        cr_assert(v == NULL || strcmp(v, "1.0") == 0, "CONNECT 1.0 got %s", h_show(f));
    else
        cr_assert(v != NULL && strcmp(v, version) == 0, "CONNECT %s got %s", version, h_show(f));
    return c;
}

struct h_conn *h_client(struct h_broker *b, const char *version)
{
    return h_client_login(b, version, "guest", "guest");
}

const char *h_rid(struct h_conn *c)
{
    return h_fmt("r%u", ++c->receipt_seq);
}

void h_subscribe(struct h_conn *c, const char *dest, const char *id, const char *ack,
                 const char *extra)
{
    const char *rid = h_rid(c);
    h_sendf(c, "SUBSCRIBE\ndestination:%s\nid:%s\n%s%s%s%sreceipt:%s\n\n", dest, id,
            ack ? "ack:" : "", ack ? ack : "", ack ? "\n" : "", extra ? extra : "", rid);
    h_expect_receipt(c, rid);
}

void h_unsubscribe(struct h_conn *c, const char *id)
{
    const char *rid = h_rid(c);
    h_sendf(c, "UNSUBSCRIBE\nid:%s\nreceipt:%s\n\n", id, rid);
    h_expect_receipt(c, rid);
}

void h_publish(struct h_conn *c, const char *dest, const char *body, bool with_receipt)
{
    if (!with_receipt) {
        h_sendf(c, "SEND\ndestination:%s\ncontent-type:text/plain\n\n%s", dest, body);
        return;
    }
    const char *rid = h_rid(c);
    h_sendf(c, "SEND\ndestination:%s\ncontent-type:text/plain\nreceipt:%s\n\n%s", dest, rid, body);
    h_expect_receipt(c, rid);
}

static void ack_like(struct h_conn *c, const char *cmd, const struct h_frame *f, const char *txn,
                     bool with_receipt)
{
    char hdrs[1024];
    int n;
    if (c->version >= 12) {
        const char *ack = h_hdr(f, "ack");
        cr_assert(ack != NULL, "1.2 MESSAGE without an ack header: %s", h_show(f));
        n = snprintf(hdrs, sizeof hdrs, "id:%s\n", ack);
    } else if (c->version == 11) {
        n = snprintf(hdrs, sizeof hdrs, "message-id:%s\nsubscription:%s\n", h_hdr(f, "message-id"),
                     h_hdr(f, "subscription"));
    } else {
        n = snprintf(hdrs, sizeof hdrs, "message-id:%s\n", h_hdr(f, "message-id"));
    }
    if (txn)
        n += snprintf(hdrs + n, sizeof hdrs - (size_t)n, "transaction:%s\n", txn);
    const char *rid = with_receipt ? h_rid(c) : NULL;
    if (rid)
        snprintf(hdrs + n, sizeof hdrs - (size_t)n, "receipt:%s\n", rid);
    h_sendf(c, "%s\n%s\n", cmd, hdrs);
    if (rid)
        h_expect_receipt(c, rid);
}

void h_ack(struct h_conn *c, const struct h_frame *f, const char *txn, bool with_receipt)
{
    ack_like(c, "ACK", f, txn, with_receipt);
}

void h_nack(struct h_conn *c, const struct h_frame *f, const char *txn, bool with_receipt)
{
    ack_like(c, "NACK", f, txn, with_receipt);
}

static void bystander(struct h_broker *b, const char *kind)
{
    struct h_conn *ok = h_client(b, "1.2");
    const char *q = h_dest(kind, "bystander");
    h_subscribe(ok, q, "s", NULL, NULL);
    h_publish(ok, q, "still-here", true);
    h_expect_msg(ok, "still-here");
    h_disconnect(ok);
}

void h_bystander_ok(struct h_broker *b)
{
    bystander(b, "queue");
}

void h_bystander_topic_ok(struct h_broker *b)
{
    bystander(b, "topic");
}

void h_disconnect(struct h_conn *c)
{
    const char *rid = h_rid(c);
    h_sendf(c, "DISCONNECT\nreceipt:%s\n\n", rid);
    h_expect_receipt(c, rid);
    struct h_frame *more = NULL;
    cr_assert(h_wait_closed(c, 3000, &more), "not closed within 3 s after DISCONNECT receipt (%s)",
              more ? h_show(more) : "still open");
}

const char *h_dest(const char *kind, const char *tag)
{
    static unsigned seq;
    return h_fmt("/%s/%s-%d-%u", kind, tag, (int)getpid(), ++seq);
}

/* ------------------------------------------------ added for the TLS suites */

int h_broker_port_of(struct h_broker *b, const char *scheme)
{
    char needle[64];
    snprintf(needle, sizeof needle, "listening on %s", scheme);
    /* The broker logs its listeners one after the other: wait for this one. */
    const char *log = h_broker_log(b);
    for (uint64_t deadline = h_now_ms() + 3000;
         (strstr(log, needle) == NULL || strchr(strstr(log, needle), '\n') == NULL) &&
         h_now_ms() < deadline;
         log = h_broker_log(b))
        h_sleep_ms(5);
    const char *p = strstr(log, needle);
    cr_assert(p != NULL, "no 'listening on %s' line in the log:\n%s", scheme, log);
    p += strlen(needle);
    const char *eol = strchr(p, '\n');
    cr_assert(eol != NULL, "incomplete 'listening on %s' line:\n%s", scheme, log);
    const char *colon = NULL;
    if (strncmp(p, "://", 3) == 0)
        p += 3; /* the scheme was given without it */
    if (*p == '[')
        p = strchr(p, ']'); /* IPv6: the port follows the bracket */
    for (const char *q = p; q && q < eol && *q != '/'; q++)
        if (*q == ':')
            colon = q;
    cr_assert(colon != NULL, "no port in the 'listening on %s' line:\n%s", scheme, log);
    int port = atoi(colon + 1);
    cr_assert(port > 0 && port < 65536, "bad port in the 'listening on %s' line:\n%s", scheme, log);
    return port;
}

struct h_conn *h_conn_wrap_fd(int fd)
{
    cr_assert(reg_nconns < 512, "harness: too many connections");
    cr_assert(fd >= 0);
    int fl = fcntl(fd, F_GETFL);
    cr_assert(fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0, "fcntl: %s", strerror(errno));
    struct h_conn *c = xcalloc(1, sizeof *c);
    c->fd = fd;
    c->cap = 65536;
    c->buf = xcalloc(1, c->cap);
    reg_conns[reg_nconns++] = c;
    return c;
}

int h_sh(const char *cmd, int timeout_ms, char **out)
{
    char opath[128];
    int ofd = make_log(opath, sizeof opath);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    pid_t pid = h_spawn(argv, NULL, ofd, ofd);
    close(ofd);
    int st = 0, rc;
    if (wait_exit(pid, &st, timeout_ms) != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        rc = -2;
    } else {
        rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }
    if (out)
        *out = read_file_all(opath);
    unlink(opath);
    return rc;
}

/* ========================================================= WebSocket, HTTP */

#include <strings.h>
/*
 * Added for the 12_ws_* suites: a WebSocket client written from RFC 6455 (its
 * own SHA-1 and base64 for the accept key, its own frame reader) so the suites
 * test the broker's engine rather than agree with it. Same contract as above:
 * single-threaded, bounded waits, registry-owned results.
 */

struct h_broker *h_broker_start_ws(int workers, const char *const *args)
{
    const char *argv[60];
    size_t n = 0;
    argv[n++] = "--listen";
    argv[n++] = "ws://127.0.0.1:0/ws";
    for (size_t i = 0; args && args[i] && n < 59; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    struct h_broker *b = h_broker_start_ex(workers, true, argv, NULL);
    (void)h_listener_port(b, "ws");
    return b;
}

int h_listener_port(struct h_broker *b, const char *scheme)
{
    return h_broker_port_of(b, h_fmt("%s://", scheme));
}

/* ---- SHA-1 (FIPS 180-4) and base64, only for the accept key ---- */

static uint32_t rol32(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const uint8_t *blk)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)blk[4 * i] << 24 | (uint32_t)blk[4 * i + 1] << 16 |
               (uint32_t)blk[4 * i + 2] << 8 | blk[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5a827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ed9eba1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8f1bbcdc;
        } else {
            f = b ^ c ^ d;
            k = 0xca62c1d6;
        }
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static void sha1(const uint8_t *p, size_t n, uint8_t out[20])
{
    uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    size_t full = n / 64 * 64;
    for (size_t i = 0; i < full; i += 64)
        sha1_block(h, p + i);
    uint8_t tail[128] = {0};
    size_t rest = n - full;
    memcpy(tail, p + full, rest);
    tail[rest] = 0x80;
    size_t tl = rest + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++)
        tail[tl - 1 - i] = (uint8_t)(bits >> (8 * i));
    for (size_t i = 0; i < tl; i += 64)
        sha1_block(h, tail + i);
    for (int i = 0; i < 20; i++)
        out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static void base64(const uint8_t *p, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

void h_ws_accept_for(const char *key, char out[29])
{
    const char *s = h_fmt("%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    uint8_t dig[20];
    sha1((const uint8_t *)s, strlen(s), dig);
    base64(dig, 20, out);
}

static void random_bytes(uint8_t *p, size_t n)
{
    static uint64_t x;
    if (x == 0)
        x = h_now_ms() * 6364136223846793005ull + (uint64_t)getpid();
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)x;
    }
}

/* ---- HTTP ---- */

static int status_of(const char *resp)
{
    int st = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &st) != 1)
        return 0;
    return st;
}

const char *h_http_exchange(int port, const void *req, size_t len, int timeout_ms, int *status,
                            bool *closed)
{
    struct h_conn *c = h_dial_port(port, 0);
    int r = h_send_raw(c, req, len);
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
    bool eof = false;
    while (!eof) {
        uint64_t now = h_now_ms();
        if (now >= deadline)
            break;
        eof = fill(c, (int)(deadline - now)) < 0;
    }
    if (closed)
        *closed = eof;
    const char *resp = reg_keep(xstrndup(c->buf + c->off, c->len - c->off));
    if (status)
        *status = status_of(resp);
    (void)r; /* the server may close before it read everything: the answer decides */
    h_close(c);
    return resp;
}

const char *h_http_header(const char *resp, const char *name)
{
    size_t nl = strlen(name);
    const char *end = strstr(resp, "\r\n\r\n");
    const char *p = strstr(resp, "\r\n");
    while (p != NULL && (end == NULL || p < end)) {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t vl = e ? (size_t)(e - v) : strlen(v);
            while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            return reg_keep(xstrndup(v, vl));
        }
        p = strstr(p, "\r\n");
    }
    return NULL;
}

const char *h_http_get(int port, const char *path)
{
    const char *req =
        h_fmt("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", path, port);
    int st = 0;
    bool closed = false;
    const char *resp = h_http_exchange(port, req, strlen(req), 3000, &st, &closed);
    cr_assert(st == 200, "GET %s: expected 200, got: %.300s", path, resp);
    cr_assert(closed, "GET %s: the server did not close after the answer", path);
    const char *body = strstr(resp, "\r\n\r\n");
    cr_assert(body != NULL, "GET %s: no end of head: %.300s", path, resp);
    body += 4;
    const char *cl = h_http_header(resp, "Content-Length");
    cr_assert(cl != NULL, "GET %s: no Content-Length: %.300s", path, resp);
    cr_assert((size_t)atol(cl) == strlen(body), "GET %s: Content-Length %s but %zu body bytes",
              path, cl, strlen(body));
    return body;
}

/* ---- WebSocket client ---- */

static bool header_has_token(const char *value, const char *token)
{
    size_t tl = strlen(token);
    for (const char *p = value; p && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ", ");
        if (n == tl && strncasecmp(p, token, tl) == 0)
            return true;
        p += n;
    }
    return false;
}

struct h_ws *h_ws_upgrade(int port, const char *path, const char *protocols, const char *extra)
{
    uint8_t kb[16];
    char key[32], accept[29];
    random_bytes(kb, sizeof kb);
    base64(kb, sizeof kb, key);
    h_ws_accept_for(key, accept);
    const char *req =
        h_fmt("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
              "Sec-WebSocket-Version: 13\r\n%s%s%s%s\r\n",
              path, port, key, protocols ? "Sec-WebSocket-Protocol: " : "",
              protocols ? protocols : "", protocols ? "\r\n" : "", extra ? extra : "");
    struct h_ws *w = reg_keep(xcalloc(1, sizeof *w));
    w->raw = h_dial_port(port, 0);
    w->st = xcalloc(1, sizeof *w->st); /* no socket: only its buffer and frame reader */
    w->st->fd = -1;
    w->st->cap = 65536;
    w->st->buf = xcalloc(1, w->st->cap);
    cr_assert(reg_nconns < sizeof reg_conns / sizeof reg_conns[0], "harness: too many connections");
    reg_conns[reg_nconns++] = w->st;
    w->close_code = -1;
    h_send(w->raw, req, strlen(req));
    uint64_t deadline = h_now_ms() + H_WAIT;
    const char *end = NULL;
    for (;;) {
        end = memmem(w->raw->buf + w->raw->off, w->raw->len - w->raw->off, "\r\n\r\n", 4);
        if (end != NULL)
            break;
        uint64_t now = h_now_ms();
        cr_assert(now < deadline && !w->raw->closed,
                  "no complete answer to the upgrade of %s (%s): %.*s", path,
                  w->raw->closed ? "closed" : "timeout", (int)w->raw->len, w->raw->buf);
        fill(w->raw, (int)(deadline - now));
    }
    size_t hl = (size_t)(end + 4 - (w->raw->buf + w->raw->off));
    w->head = reg_keep(xstrndup(w->raw->buf + w->raw->off, hl));
    w->raw->off += hl;
    w->status = status_of(w->head);
    if (w->status != 101)
        return w;
    const char *up = h_http_header(w->head, "Upgrade");
    const char *conn = h_http_header(w->head, "Connection");
    const char *acc = h_http_header(w->head, "Sec-WebSocket-Accept");
    cr_assert(up && strcasecmp(up, "websocket") == 0, "101 without Upgrade: websocket:\n%s",
              w->head);
    cr_assert(conn && header_has_token(conn, "upgrade"), "101 without Connection: Upgrade:\n%s",
              w->head);
    cr_assert(acc && strcmp(acc, accept) == 0,
              "Sec-WebSocket-Accept for key %s: expected %s, got %s", key, accept,
              acc ? acc : "(none)");
    return w;
}

struct h_ws *h_ws_dial(int port)
{
    struct h_ws *w = h_ws_upgrade(port, "/ws", "v12.stomp,v11.stomp,v10.stomp", NULL);
    cr_assert(w->status == 101, "upgrade: expected 101, got:\n%s", w->head);
    return w;
}

int h_ws_send_frame_ex(struct h_ws *w, int opcode, bool fin, bool mask, const void *p, size_t n)
{
    uint8_t *f = xcalloc(1, n + 14);
    size_t h = 0;
    f[h++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    uint8_t mbit = mask ? 0x80 : 0;
    if (n < 126) {
        f[h++] = (uint8_t)(mbit | n);
    } else if (n <= 0xffff) {
        f[h++] = mbit | 126;
        f[h++] = (uint8_t)(n >> 8);
        f[h++] = (uint8_t)n;
    } else {
        f[h++] = mbit | 127;
        for (int i = 7; i >= 0; i--)
            f[h++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    uint8_t key[4] = {0};
    if (mask) {
        random_bytes(key, 4);
        memcpy(f + h, key, 4);
        h += 4;
    }
    memcpy(f + h, p, n);
    for (size_t i = 0; mask && i < n; i++)
        f[h + i] ^= key[i % 4];
    int r = h_send_raw(w->raw, f, h + n);
    free(f);
    return r;
}

void h_ws_send_frame(struct h_ws *w, int opcode, bool fin, const void *p, size_t n)
{
    int r = h_ws_send_frame_ex(w, opcode, fin, true, p, n);
    cr_assert(r == 0, "sending a WebSocket frame of %zu bytes failed: %s", n, strerror(-r));
}

void h_ws_sendz(struct h_ws *w, const char *frame)
{
    h_ws_send_frame(w, 1, true, frame, strlen(frame) + 1);
}

void h_ws_sendf(struct h_ws *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0);
    h_ws_send_frame(w, 1, true, s, (size_t)n + 1);
    free(s);
}

/* 1: a frame in *out, 0: need more bytes. */
static int parse_ws_frame(struct h_conn *c, struct h_wsframe *out)
{
    const uint8_t *p = (const uint8_t *)c->buf + c->off;
    size_t avail = c->len - c->off;
    if (avail < 2)
        return 0;
    size_t h = 2;
    uint64_t n = p[1] & 0x7f;
    if (n == 126) {
        if (avail < 4)
            return 0;
        n = (uint64_t)p[2] << 8 | p[3];
        h = 4;
    } else if (n == 127) {
        if (avail < 10)
            return 0;
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | p[2 + i];
        h = 10;
    }
    bool masked = p[1] & 0x80;
    if (masked)
        h += 4;
    cr_assert(n < ((uint64_t)1 << 32), "server frame of %llu bytes", (unsigned long long)n);
    if (avail < h + n)
        return 0;
    out->fin = p[0] & 0x80;
    out->rsv = (p[0] >> 4) & 7;
    out->opcode = p[0] & 0x0f;
    out->masked = masked;
    out->len = (size_t)n;
    out->payload = reg_keep(xcalloc(1, (size_t)n + 1));
    memcpy(out->payload, p + h, (size_t)n);
    for (size_t i = 0; masked && i < (size_t)n; i++)
        out->payload[i] ^= p[h - 4 + i % 4];
    c->off += h + (size_t)n;
    return 1;
}

int h_ws_read_frame(struct h_ws *w, int timeout_ms, struct h_wsframe *out)
{
    uint64_t deadline = h_now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        if (parse_ws_frame(w->raw, out) == 1) {
            cr_assert(!out->masked, "the server sent a masked frame (opcode %d)", out->opcode);
            cr_assert(out->rsv == 0, "the server set RSV bits %d (opcode %d)", out->rsv,
                      out->opcode);
            return 1;
        }
        uint64_t now = h_now_ms();
        int left = now >= deadline ? 0 : (int)(deadline - now);
        int r = fill(w->raw, left);
        if (r < 0)
            return -1;
        if (r == 0 && left == 0)
            return 0;
    }
}

/* Append a data payload to the STOMP side buffer. */
static void st_append(struct h_ws *w, const uint8_t *p, size_t n)
{
    struct h_conn *s = w->st;
    while (s->cap - s->len < n + 16384) {
        s->cap *= 2;
        s->buf = realloc(s->buf, s->cap);
        cr_assert(s->buf != NULL, "harness: out of memory");
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

/* RFC 3629 UTF-8 (no overlongs, surrogates or code points past U+10FFFF),
 * written here independently of src/ws. */
static bool utf8_ok(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

/* Handle one server frame. Returns false when it was a close frame. Every
 * text message the server sends must be valid UTF-8 (a browser fails the
 * connection otherwise): asserted here, on the reassembled message. */
static bool ws_take(struct h_ws *w, const struct h_wsframe *f)
{
    switch (f->opcode) {
    case 0x0:
        cr_assert(w->msg_opcode != 0, "the server sent a continuation outside a message");
        st_append(w, f->payload, f->len);
        break;
    case 0x1:
    case 0x2:
        cr_assert(w->msg_opcode == 0, "the server began a message inside a fragmented one");
        w->msg_opcode = f->opcode;
        st_append(w, f->payload, f->len);
        break;
    case 0x8:
        w->close_code = f->len >= 2 ? (f->payload[0] << 8 | f->payload[1]) : 0;
        return false;
    case 0x9:
        w->pings++;
        return true;
    case 0xa:
        w->pongs++;
        w->last_pong_len = f->len < sizeof w->last_pong ? f->len : sizeof w->last_pong;
        memcpy(w->last_pong, f->payload, w->last_pong_len);
        return true;
    default:
        cr_assert_fail("the server sent opcode %d", f->opcode);
    }
    if (f->opcode <= 0x2)
        w->msg_len += f->len;
    if (f->fin) {
        if (w->msg_opcode == 1) {
            struct h_conn *s = w->st;
            cr_assert(s->len >= w->msg_len);
            cr_assert(utf8_ok((const uint8_t *)s->buf + s->len - w->msg_len, w->msg_len),
                      "the server sent a text message of %zu bytes that is not UTF-8: %.*s",
                      w->msg_len, (int)(w->msg_len > 200 ? 200 : w->msg_len),
                      s->buf + s->len - w->msg_len);
        }
        w->msg_len = 0;
        w->last_opcode = w->msg_opcode;
        if (w->msg_opcode == 1)
            w->text_msgs++;
        else
            w->binary_msgs++;
        w->msg_opcode = 0;
    }
    return true;
}

struct h_frame *h_ws_read(struct h_ws *w, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        struct h_frame *f = NULL;
        if (w->msg_opcode == 0 && parse_frame(w->st, &f) == 1) {
            make_room(w->st);
            return f;
        }
        if (w->close_code >= 0)
            return NULL;
        uint64_t now = h_now_ms();
        struct h_wsframe wf;
        int r = h_ws_read_frame(w, now >= deadline ? 0 : (int)(deadline - now), &wf);
        if (r <= 0)
            return NULL;
        if (!ws_take(w, &wf))
            return NULL;
    }
}

static const char *ws_why(const struct h_ws *w)
{
    if (w->close_code >= 0)
        return h_fmt("a close frame (code %d)", w->close_code);
    return closed_text(w->raw);
}

struct h_frame *h_ws_expect(struct h_ws *w, const char *cmd, int timeout_ms)
{
    struct h_frame *f = h_ws_read(w, timeout_ms);
    cr_assert(f != NULL, "expected %s over WebSocket, got %s", cmd, ws_why(w));
    cr_assert(strcmp(f->cmd, cmd) == 0, "expected %s over WebSocket, got %s", cmd, h_show(f));
    return f;
}

int h_ws_expect_close(struct h_ws *w, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
    while (w->close_code < 0) {
        uint64_t now = h_now_ms();
        cr_assert(now < deadline, "no close frame within %d ms", timeout_ms);
        struct h_wsframe wf;
        int r = h_ws_read_frame(w, (int)(deadline - now), &wf);
        cr_assert(r >= 0, "the connection ended without a close frame (%s)", closed_text(w->raw));
        if (r == 1 && wf.opcode == 0x8)
            ws_take(w, &wf);
    }
    return w->close_code;
}

bool h_ws_wait_eof(struct h_ws *w, int ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)ms;
    for (;;) {
        w->raw->off = w->raw->len; /* discard */
        uint64_t now = h_now_ms();
        if (now >= deadline)
            return false;
        if (fill(w->raw, (int)(deadline - now)) < 0)
            return true;
    }
}

struct h_ws *h_ws_client(int port, const char *version)
{
    struct h_ws *w = h_ws_dial(port);
    h_ws_sendf(w, "CONNECT\naccept-version:%s\nhost:/\nlogin:guest\npasscode:guest\n\n", version);
    struct h_frame *f = h_ws_expect(w, "CONNECTED", H_WAIT);
    const char *v = h_hdr(f, "version");
    cr_assert(v != NULL && strcmp(v, version) == 0, "CONNECT %s over WebSocket got %s", version,
              h_show(f));
    w->st->version = strcmp(v, "1.0") == 0 ? 10 : strcmp(v, "1.1") == 0 ? 11 : 12;
    return w;
}

void h_ws_subscribe(struct h_ws *w, const char *dest, const char *id, const char *ack)
{
    const char *rid = h_rid(w->st);
    h_ws_sendf(w, "SUBSCRIBE\ndestination:%s\nid:%s\nack:%s\nreceipt:%s\n\n", dest, id,
               ack ? ack : "auto", rid);
    struct h_frame *f = h_ws_expect(w, "RECEIPT", H_WAIT);
    cr_assert(strcmp(h_hdr(f, "receipt-id") ? h_hdr(f, "receipt-id") : "", rid) == 0,
              "expected RECEIPT %s, got %s", rid, h_show(f));
}

double h_metric(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}
