/*
 * nats_harness.c - nats-server processes and Stampede cluster nodes for the
 * integration suites (see nats_harness.h for the contract).
 *
 * A server is forked with stdin /dev/null and stdout/stderr appended to its
 * log file (nats-server's own -l appends to the same file), and dies with the
 * test process (PR_SET_PDEATHSIG). Readiness is two checks, both bounded: the
 * current run's part of the log says "Server is ready", and a TCP client gets
 * a line starting "INFO {" from the port.
 */
#include "nats_harness.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SERVERS 8
#define MAX_ARGS 64

static struct h_nats *servers[MAX_SERVERS];
static size_t nservers;

/* ------------------------------------------------------------- files, text */

/* The file from `offset` on, malloc'ed and NUL-terminated ("" when missing);
 * the caller frees it. */
static char *slurp(const char *path, size_t offset)
{
    FILE *fp = fopen(path, "rb");
    size_t cap = 8192, len = 0;
    char *s = malloc(cap);
    cr_assert(s != NULL, "nats harness: out of memory");
    if (fp != NULL && fseek(fp, (long)offset, SEEK_SET) == 0) {
        size_t got;
        while ((got = fread(s + len, 1, cap - len - 1, fp)) > 0) {
            len += got;
            if (cap - len < 1024) {
                cap *= 2;
                s = realloc(s, cap);
                cr_assert(s != NULL, "nats harness: out of memory");
            }
        }
    }
    if (fp != NULL)
        fclose(fp);
    s[len] = '\0';
    return s;
}

static size_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

size_t h_count(const char *text, const char *needle)
{
    size_t n = 0, len = strlen(needle);
    if (len == 0)
        return 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += len)
        n++;
    return n;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_tree(const char *dir)
{
    if (dir[0] != '\0')
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ----------------------------------------------------------------- process */

static const char *server_bin(void)
{
    const char *bin = getenv("ITEST_NATS_SERVER");
    if (bin == NULL || bin[0] == '\0')
        bin = "/usr/sbin/nats-server";
    cr_assert(access(bin, X_OK) == 0,
              "%s is not installed (%s): run scripts/dev.sh deps (it installs Debian's "
              "nats-server package)",
              bin, strerror(errno));
    return bin;
}

static pid_t spawn_server(const char *const *argv, const char *log_path)
{
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    cr_assert(fd >= 0, "open %s: %s", log_path, strerror(errno));
    pid_t pid = h_spawn(argv, NULL, fd, fd);
    close(fd);
    return pid;
}

/* Reaps the server when it exited; true while it runs. */
bool h_nats_alive(struct h_nats *n)
{
    if (!n->running)
        return false;
    int st;
    if (waitpid(n->pid, &st, WNOHANG) == n->pid) {
        n->running = false;
        n->status = st;
        n->pid = 0;
    }
    return n->running;
}

static int wait_gone(struct h_nats *n, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
    while (h_nats_alive(n)) {
        if (h_now_ms() >= deadline)
            return -1;
        h_sleep_ms(5);
    }
    return 0;
}

static void kill_and_reap(struct h_nats *n)
{
    if (!n->running)
        return;
    kill(n->pid, SIGKILL);
    waitpid(n->pid, &n->status, 0);
    n->running = false;
    n->pid = 0;
}

static void nats_fini(void)
{
    for (size_t i = 0; i < nservers; i++) {
        struct h_nats *n = servers[i];
        kill_and_reap(n);
        if (getenv("ITEST_KEEP_LOGS") == NULL)
            remove_tree(n->dir);
        free(n);
    }
    nservers = 0;
}

/* ----------------------------------------------------------- readiness */

/* The port from the current run's "Listening for client connections on
 * HOST:PORT" line, 0 while there is none. */
static int logged_port(const char *log)
{
    const char *p = strstr(log, "Listening for client connections on ");
    if (p == NULL)
        return 0;
    const char *eol = strchr(p, '\n');
    const char *colon = NULL;
    for (const char *q = p; eol != NULL && q < eol; q++)
        if (*q == ':')
            colon = q;
    if (colon == NULL)
        return 0;
    int port = atoi(colon + 1);
    return port > 0 && port < 65536 ? port : 0;
}

/* Connect to 127.0.0.1:port and read the first line within timeout_ms; true
 * when it starts "INFO {". */
static bool info_answers(int port, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char buf[8] = {0};
    size_t got = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        while (got < 6) {
            ssize_t r = recv(fd, buf + got, 6 - got, 0);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
    }
    close(fd);
    return got == 6 && memcmp(buf, "INFO {", 6) == 0;
}

/* Waits until the current run is ready (see the top of the file); asserts. */
static void wait_ready(struct h_nats *n)
{
    uint64_t deadline = h_now_ms() + H_NATS_START_MS;
    for (;;) {
        char *log = slurp(n->log_path, n->log_start);
        int port = logged_port(log);
        bool ready = strstr(log, "Server is ready") != NULL;
        free(log);
        if (port != 0 && n->port == 0)
            n->port = port;
        if (ready && port != 0 && port == n->port && info_answers(port, 1000))
            return;
        if (!h_nats_alive(n))
            cr_assert_fail("nats-server exited at start (status 0x%x); log:\n%s", n->status,
                           h_nats_log(n));
        if (h_now_ms() >= deadline) {
            kill_and_reap(n);
            cr_assert_fail("nats-server was not ready on port %d within %d ms; log:\n%s", n->port,
                           H_NATS_START_MS, h_nats_log(n));
        }
        h_sleep_ms(10);
    }
}

/* Starts one run: -p -1 the first time, the known port afterwards. */
static void run_server(struct h_nats *n)
{
    char port[16];
    snprintf(port, sizeof port, "%d", n->port > 0 ? n->port : -1);
    const char *argv[MAX_ARGS];
    size_t k = 0;
    argv[k++] = server_bin();
    argv[k++] = "-a";
    argv[k++] = "127.0.0.1";
    argv[k++] = "-p";
    argv[k++] = port;
    argv[k++] = "-l";
    argv[k++] = n->log_path;
    if (n->jetstream) {
        argv[k++] = "-js";
        argv[k++] = "-sd";
        argv[k++] = n->store_dir;
    }
    for (size_t i = 0; n->extra && n->extra[i]; i++) {
        cr_assert(k < MAX_ARGS - 1, "nats harness: too many arguments");
        argv[k++] = n->extra[i];
    }
    argv[k] = NULL;
    n->log_start = file_size(n->log_path);
    n->pid = spawn_server(argv, n->log_path);
    n->running = true;
    n->starts++;
    wait_ready(n);
    if (n->url[0] == '\0')
        snprintf(n->url, sizeof n->url, "nats://127.0.0.1:%d", n->port);
}

struct h_nats *h_nats_start(bool jetstream)
{
    return h_nats_start_ex(jetstream, NULL);
}

struct h_nats *h_nats_start_ex(bool jetstream, const char *const *extra)
{
    (void)server_bin(); /* fail first with the install hint */
    cr_assert(nservers < MAX_SERVERS, "nats harness: too many servers");
    h_at_fini(nats_fini);
    struct h_nats *n = calloc(1, sizeof *n);
    cr_assert(n != NULL, "nats harness: out of memory");
    servers[nservers++] = n;
    n->jetstream = jetstream;
    n->extra = extra;
    const char *tmp = getenv("TMPDIR");
    snprintf(n->dir, sizeof n->dir, "%s/stampede-nats-%d-XXXXXX",
             tmp && tmp[0] && strlen(tmp) < 64 ? tmp : "/tmp", (int)getpid());
    cr_assert(mkdtemp(n->dir) != NULL, "mkdtemp %s: %s", n->dir, strerror(errno));
    snprintf(n->log_path, sizeof n->log_path, "%s/nats.log", n->dir);
    snprintf(n->store_dir, sizeof n->store_dir, "%s/store", n->dir);
    run_server(n);
    return n;
}

const char *h_nats_url(const struct h_nats *n)
{
    return n->url;
}

int h_nats_port(const struct h_nats *n)
{
    return n->port;
}

int h_nats_stop(struct h_nats *n)
{
    if (h_nats_alive(n)) {
        kill(n->pid, SIGTERM);
        if (wait_gone(n, 5000) != 0) {
            kill_and_reap(n);
            return -2;
        }
    }
    if (WIFEXITED(n->status))
        return WEXITSTATUS(n->status);
    return -1;
}

void h_nats_kill(struct h_nats *n)
{
    if (h_nats_alive(n))
        kill_and_reap(n);
}

void h_nats_restart(struct h_nats *n)
{
    cr_assert(n->port > 0, "h_nats_restart: the server never started");
    h_nats_stop(n);
    run_server(n);
}

const char *h_nats_log(const struct h_nats *n)
{
    char *log = slurp(n->log_path, 0);
    const char *kept = h_fmt("%s", log);
    free(log);
    return kept;
}

/* ---------------------------------------------------------- cluster nodes */

struct h_broker *h_cluster_node_ex(const char *url, const char *name, int workers,
                                   const char *const *args, const char *const *env)
{
    const char *argv[MAX_ARGS];
    size_t k = 0;
    argv[k++] = "--cluster";
    argv[k++] = url;
    argv[k++] = "--node-name";
    argv[k++] = name;
    for (size_t i = 0; args && args[i]; i++) {
        cr_assert(k < MAX_ARGS - 1, "h_cluster_node: too many arguments");
        argv[k++] = args[i];
    }
    argv[k] = NULL;
    return h_broker_start_ex(workers, true, argv, env);
}

struct h_broker *h_cluster_node(struct h_nats *n, const char *name, ...)
{
    const char *args[MAX_ARGS];
    size_t k = 0;
    int workers = 2;
    va_list ap;
    va_start(ap, name);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
        cr_assert(k < MAX_ARGS - 1, "h_cluster_node: too many arguments");
        if (strcmp(a, "--workers") == 0 || strncmp(a, "--workers=", 10) == 0)
            workers = 0; /* theirs, not the default */
        args[k++] = a;
    }
    va_end(ap);
    args[k] = NULL;
    return h_cluster_node_ex(h_nats_url(n), name, workers, args, NULL);
}

static bool log_has(struct h_broker *b, const char *needle, size_t n)
{
    char *log = slurp(b->log_path, 0);
    bool found = h_count(log, needle) >= n;
    free(log);
    return found;
}

bool h_broker_log_wait_n(struct h_broker *b, const char *needle, size_t n, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        if (log_has(b, needle, n))
            return true;
        if (!h_broker_alive(b))
            return log_has(b, needle, n); /* it may have logged just before exiting */
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(10);
    }
}

bool h_broker_log_wait(struct h_broker *b, const char *needle, int timeout_ms)
{
    return h_broker_log_wait_n(b, needle, 1, timeout_ms);
}

/* ------------------------------------------------------- NATS requests */

/* Bytes from fd appended to *buf (growing it) until `enough` says the
 * buffer holds what the caller waits for, the deadline passes or the peer
 * closes; true when it does. */
static bool read_until(int fd, char **buf, size_t *len, size_t *cap, uint64_t deadline,
                       bool (*enough)(const char *, size_t, size_t *), size_t *at)
{
    for (;;) {
        if (enough(*buf, *len, at))
            return true;
        uint64_t now = h_now_ms();
        if (now >= deadline)
            return false;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
            continue;
        if (*cap - *len < 4096) {
            *cap *= 2;
            *buf = realloc(*buf, *cap);
            cr_assert(*buf != NULL, "nats harness: out of memory");
        }
        ssize_t r = recv(fd, *buf + *len, *cap - *len - 1, 0);
        if (r <= 0)
            return false;
        *len += (size_t)r;
        (*buf)[*len] = '\0';
    }
}

/* Whether buf holds a whole "MSG _INBOX.h 1 LEN\r\n<LEN bytes>\r\n"; *at
 * is then the payload's offset (its length follows from the line). */
static bool reply_complete(const char *buf, size_t len, size_t *at)
{
    const char *m = len ? strstr(buf, "MSG _INBOX.h 1 ") : NULL;
    if (m == NULL)
        return false;
    const char *eol = strstr(m, "\r\n");
    if (eol == NULL)
        return false;
    size_t n = strtoul(m + strlen("MSG _INBOX.h 1 "), NULL, 10);
    size_t start = (size_t)(eol + 2 - buf);
    if (len < start + n)
        return false;
    *at = start;
    return true;
}

const char *h_nats_request(const struct h_nats *n, const char *subject, const char *payload,
                           int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)n->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return NULL;
    }
    const char *req = h_fmt("CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB _INBOX.h 1\r\n"
                            "PUB %s _INBOX.h %zu\r\n%s\r\n",
                            subject, strlen(payload), payload);
    size_t len = strlen(req), sent = 0;
    while (sent < len) {
        ssize_t w = send(fd, req + sent, len - sent, MSG_NOSIGNAL);
        if (w <= 0) {
            close(fd);
            return NULL;
        }
        sent += (size_t)w;
    }
    size_t cap = 65536, got = 0, at = 0;
    char *buf = malloc(cap);
    cr_assert(buf != NULL, "nats harness: out of memory");
    buf[0] = '\0';
    bool ok =
        read_until(fd, &buf, &got, &cap, h_now_ms() + (uint64_t)timeout_ms, reply_complete, &at);
    close(fd);
    const char *out = NULL;
    if (ok) {
        const char *m = strstr(buf, "MSG _INBOX.h 1 ");
        size_t plen = strtoul(m + strlen("MSG _INBOX.h 1 "), NULL, 10);
        out = h_fmt("%.*s", (int)plen, buf + at);
    }
    free(buf);
    return out;
}

/* ------------------------------------------------------ a raw NATS client */

int h_nats_raw_dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    cr_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "nats connect: %s",
              strerror(errno));
    static const char hello[] = "CONNECT {\"verbose\":false,\"pedantic\":false}\r\n";
    cr_assert(write(fd, hello, sizeof(hello) - 1) == (ssize_t)sizeof(hello) - 1);
    return fd;
}

void h_nats_raw_pub(int fd, const char *subject, const char *reply, const void *p, size_t n)
{
    char head[600];
    int k = snprintf(head, sizeof(head), "PUB %s %s%s%zu\r\n", subject, reply ? reply : "",
                     reply ? " " : "", n);
    cr_assert(k > 0 && (size_t)k < sizeof(head));
    cr_assert(write(fd, head, (size_t)k) == k);
    cr_assert(write(fd, p, n) == (ssize_t)n);
    cr_assert(write(fd, "\r\nPING\r\n", 8) == 8);
    char buf[4096];
    size_t got = 0;
    uint64_t end = h_now_ms() + 3000;
    while (h_now_ms() < end) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
        cr_assert(r > 0, "nats closed the raw client");
        got += (size_t)r;
        buf[got] = '\0';
        if (strstr(buf, "PONG"))
            return;
        if (got > 3000)
            got = 0;
    }
    cr_assert_fail("no PONG from nats");
}

void h_nats_raw_sub(int fd, const char *subject, int sid)
{
    char line[512];
    int k = snprintf(line, sizeof(line), "SUB %s %d\r\n", subject, sid);
    cr_assert(k > 0 && (size_t)k < sizeof(line));
    cr_assert(write(fd, line, (size_t)k) == k);
}

/* One line (without CR LF) into line[0, cap), reading a byte at a time (a
 * test's rate): false after the deadline. */
static bool raw_line(int fd, char *line, size_t cap, uint64_t deadline)
{
    size_t n = 0;
    while (h_now_ms() < deadline) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        char ch;
        if (read(fd, &ch, 1) != 1)
            return false;
        if (ch == '\n') {
            line[n > 0 && line[n - 1] == '\r' ? n - 1 : n] = '\0';
            return true;
        }
        if (n + 1 < cap)
            line[n++] = ch;
    }
    return false;
}

bool h_nats_raw_next_msg(int fd, char *subject, char *reply, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
    char line[1024], payload[1024];
    while (raw_line(fd, line, sizeof(line), deadline)) {
        if (strcmp(line, "PING") == 0) {
            cr_assert(write(fd, "PONG\r\n", 6) == 6);
            continue;
        }
        char f[4][256];
        int k = sscanf(line, "MSG %255s %255s %255s %255s", f[0], f[1], f[2], f[3]);
        if (k < 3)
            continue;
        snprintf(subject, 256, "%s", f[0]);
        snprintf(reply, 256, "%s", k == 4 ? f[2] : "");
        /* The payload and its CR LF, skipped. */
        size_t left = (size_t)strtoul(f[k - 1], NULL, 10) + 2;
        while (left > 0 && h_now_ms() < deadline) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            if (poll(&pfd, 1, 20) <= 0)
                continue;
            ssize_t r = read(fd, payload, left < sizeof(payload) ? left : sizeof(payload));
            if (r <= 0)
                return false;
            left -= (size_t)r;
        }
        return left == 0;
    }
    return false;
}

size_t h_cluster_wire(char *out, uint64_t origin, uint64_t seq, const char *tail, size_t tail_len)
{
    memcpy(out, "STP1", 4);
    for (int i = 0; i < 8; i++) {
        out[4 + i] = (char)(origin >> (8 * i));
        out[12 + i] = (char)(seq >> (8 * i));
        out[20 + i] = 0;
    }
    out[28] = 0;
    memcpy(out + 29, tail, tail_len);
    return 29 + tail_len;
}

/* ------------------------------------------------------ a node's /metrics */

double h_node_metric(struct h_broker *b, const char *series)
{
    return h_metric(h_http_get(h_listener_port(b, "ws"), "/metrics"), series);
}

bool h_node_metric_reaches(struct h_broker *b, const char *series, double want, int ms)
{
    uint64_t end = h_now_ms() + (uint64_t)ms;
    do {
        if (h_node_metric(b, series) >= want)
            return true;
        h_sleep_ms(20);
    } while (h_now_ms() < end);
    return false;
}
