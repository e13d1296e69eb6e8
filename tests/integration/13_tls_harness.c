/*
 * 13_tls_harness.c - the TLS part of the integration harness (declared at the
 * end of harness.h): test certificates made with the openssl command line once
 * per test executable, a TLS client relay built on the project's TLS engine in
 * client mode, and a ClientHello for the raw robustness tests.
 *
 * The relay: h_tls_dial() connects to the broker, forks, and the child runs
 * the client side of TLS between the TCP socket and one end of a socketpair;
 * the test keeps the other end as an ordinary struct h_conn, so the harness's
 * frame reader and STOMP helpers work over TLS without knowing about it. The
 * child first writes one status line ("OK <suite> <subject>" or "FAIL
 * <reason>") to the socketpair, then relays bytes both ways until either side
 * closes. It never calls criterion; it dies with the test process
 * (PR_SET_PDEATHSIG) at the latest.
 *
 * Thread contract: as harness.c, single-threaded in one criterion test process
 * (the relays are separate processes). The PRE_ALL/POST_ALL hooks run in the
 * criterion runner, before the tests are forked.
 */
#include "harness.h"

#include "stampede/error.h"
#include "stampede/tls.h"

#include <criterion/criterion.h>
#include <criterion/hooks.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define CERT_ENV "ITEST_TLS_CERTS"
#define HANDSHAKE_MS 3000

static const char gen_script[] =
    "set -e; cd \"$1\"; exec 2>gen.log\n"
    "ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1; }\n"
    "ca() { ec $1.key; openssl req -x509 -new -key $1.key -out $1.crt -days 2 -subj \"/CN=$2\"; }\n"
    "leaf() { openssl req -new -key $1.key -out $1.csr -subj \"/CN=$2\";\n"
    "  printf 'basicConstraints=CA:FALSE\\nsubjectAltName=%s\\n' \"$4\" > $1.ext;\n"
    "  openssl x509 -req -in $1.csr -CA $3.crt -CAkey $3.key -CAcreateserial -days 2 \\\n"
    "    -extfile $1.ext -out $1.crt; }\n"
    "SAN='DNS:localhost,IP:127.0.0.1'\n"
    "ca ca1 'Stampede ITest CA 1'; ca ca2 'Stampede ITest CA 2'\n"
    "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out srv_rsa.key\n"
    "leaf srv_rsa stampede-rsa ca1 \"$SAN\"\n"
    "ec srv_ec.key; leaf srv_ec stampede-ec ca1 \"$SAN\"\n"
    "ec srv_b.key; leaf srv_b stampede-b ca1 \"$SAN\"\n"
    "ec good.key; leaf good good-client ca1 DNS:good-client\n"
    "ec other.key; leaf other other-client ca2 DNS:other-client\n"
    "printf 'correct horse\\n' > pw.txt\n"
    "openssl ec -in srv_ec.key -aes256 -passout file:pw.txt -out srv_ec_enc.key\n";

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    static char dir[] = "/tmp/stampede-itest-tls-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    char script[256], cmd[600];
    snprintf(script, sizeof script, "%s/gen.sh", dir);
    FILE *f = fopen(script, "w");
    if (!f || fputs(gen_script, f) < 0 || fclose(f) != 0) {
        perror("gen.sh");
        exit(1);
    }
    snprintf(cmd, sizeof cmd, "sh %s %s", script, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "certificate generation failed, see %s/gen.log\n", dir);
        exit(1);
    }
    setenv(CERT_ENV, dir, 1);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    const char *dir = getenv(CERT_ENV);
    if (dir && strncmp(dir, "/tmp/stampede-itest-tls-", 24) == 0 && !getenv("ITEST_KEEP_LOGS")) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
}

const char *h_tls_path(const char *name)
{
    const char *dir = getenv(CERT_ENV);
    cr_assert(dir != NULL, "test certificates were not generated");
    return h_fmt("%s/%s", dir, name);
}

/* ------------------------------------------------------------ the relay */

/* Blocking-ish send of everything within the deadline; false on failure. */
static bool send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return false;
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (poll(&pfd, 1, 5000) <= 0)
            return false;
    }
    return true;
}

/* Send whatever ciphertext the engine holds. */
static bool flush_out(struct stp_tls *t, int tcp)
{
    for (int guard = 0; guard < 1000; guard++) {
        const char *p;
        size_t len;
        if (stp_tls_out_take(t, &p, &len) < 0 || len == 0)
            return true;
        bool ok = send_all(tcp, p, len);
        stp_tls_out_release(t);
        if (!ok)
            return false;
    }
    return true;
}

/* Decrypt everything available and pass it up; false once the stream ended. */
static bool pump_up(struct stp_tls *t, int up)
{
    static char plain[16384];
    for (;;) {
        ssize_t r = stp_tls_read(t, plain, sizeof plain);
        if (r == 0)
            return true;
        if (r < 0)
            return false;
        if (!send_all(up, plain, (size_t)r))
            return false;
    }
}

static void status_line(int up, const char *fmt, const char *a, const char *b)
{
    char line[600];
    int n = snprintf(line, sizeof line, fmt, a, b);
    for (int i = 0; i < n - 1; i++)
        if (line[i] == '\n')
            line[i] = ' ';
    send_all(up, line, (size_t)n);
}

/* The handshake; true when open. Writes the status line either way. */
static bool relay_handshake(struct stp_tls *t, int tcp, int up)
{
    char buf[16384], text[256];
    uint64_t deadline = h_now_ms() + HANDSHAKE_MS;
    int rc = stp_tls_handshake(t);
    while (rc == 0 && stp_tls_state(t) == STP_TLS_HANDSHAKE) {
        if (!flush_out(t, tcp))
            break;
        uint64_t now = h_now_ms();
        struct pollfd pfd = {.fd = tcp, .events = POLLIN};
        if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) <= 0) {
            status_line(up, "FAIL handshake timed out%s%s\n", "", "");
            return false;
        }
        ssize_t n = recv(tcp, buf, sizeof buf, 0);
        if (n <= 0) {
            status_line(up, "FAIL connection closed during the handshake%s%s\n", "",
                        n < 0 ? " (reset)" : "");
            return false;
        }
        rc = stp_tls_feed(t, buf, (size_t)n);
    }
    flush_out(t, tcp);
    if (stp_tls_state(t) != STP_TLS_OPEN) {
        status_line(up, "FAIL %s%s\n", stp_tls_errtext(t, text, sizeof text), "");
        return false;
    }
    char subject[256] = "";
    if (stp_tls_peer_subject(t, subject, sizeof subject) < 0)
        snprintf(subject, sizeof subject, "(none)");
    status_line(up, "OK %s %s\n", stp_tls_ciphersuite(t), subject);
    return true;
}

static void relay_loop(struct stp_tls *t, int tcp, int up)
{
    char buf[16384];
    if (!pump_up(t, up))
        return;
    for (;;) {
        struct pollfd pfd[2] = {{.fd = tcp, .events = POLLIN}, {.fd = up, .events = POLLIN}};
        if (poll(pfd, 2, -1) < 0 && errno != EINTR)
            return;
        if (pfd[0].revents) {
            ssize_t n = recv(tcp, buf, sizeof buf, 0);
            if (n <= 0)
                return;
            int rc = stp_tls_feed(t, buf, (size_t)n);
            flush_out(t, tcp);
            if (!pump_up(t, up) || rc < 0)
                return;
        }
        if (pfd[1].revents) {
            ssize_t n = recv(up, buf, sizeof buf, 0);
            if (n <= 0) {
                stp_tls_close(t);
                flush_out(t, tcp);
                return;
            }
            struct iovec iov = {.iov_base = buf, .iov_len = (size_t)n};
            if (stp_tls_write(t, &iov, 1) < 0 || !flush_out(t, tcp))
                return;
        }
    }
}

static void relay_main(int tcp, int up, const struct h_tls_opts *o)
{
    struct stp_tls_client_opts co = {.ca_path = o->ca,
                                     .server_name = o->server_name,
                                     .cert_path = o->cert,
                                     .key_path = o->key,
                                     .ciphers = o->ciphers};
    struct stp_tls_config *cfg = NULL;
    struct stp_tls_rng *rng = NULL;
    struct stp_tls *t = NULL;
    char err[256] = "";
    if (stp_tls_client_config_new(&cfg, &co, err, sizeof err) < 0) {
        status_line(up, "FAIL client config: %s%s\n", err, "");
        return;
    }
    if (stp_tls_rng_new(&rng) < 0 || stp_tls_new(&t, cfg, rng) < 0) {
        status_line(up, "FAIL client engine%s%s\n", "", "");
        return;
    }
    if (relay_handshake(t, tcp, up))
        relay_loop(t, tcp, up);
    shutdown(up, SHUT_RDWR);
    close(tcp);
}

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect to port %d: %s", port,
              strerror(errno));
    return fd;
}

/* Read the relay's status line (byte by byte: what follows is the stream). */
static bool read_status(int fd, char *line, size_t cap)
{
    size_t n = 0;
    uint64_t deadline = h_now_ms() + HANDSHAKE_MS + 2000;
    while (n + 1 < cap) {
        uint64_t now = h_now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) <= 0)
            break;
        char ch;
        if (recv(fd, &ch, 1, 0) != 1)
            break;
        if (ch == '\n') {
            line[n] = '\0';
            return true;
        }
        line[n++] = ch;
    }
    line[n] = '\0';
    return false;
}

static void parse_status(const char *line, struct h_tls_result *res)
{
    *res = (struct h_tls_result){0};
    if (strncmp(line, "OK ", 3) != 0) {
        snprintf(res->err, sizeof res->err, "%.200s",
                 strncmp(line, "FAIL ", 5) == 0 ? line + 5 : "relay gave no status");
        return;
    }
    res->ok = true;
    const char *suite = line + 3;
    const char *sp = strchr(suite, ' ');
    size_t n = sp ? (size_t)(sp - suite) : strlen(suite);
    snprintf(res->suite, sizeof res->suite, "%.*s", (int)n, suite);
    snprintf(res->subject, sizeof res->subject, "%.200s", sp ? sp + 1 : "");
}

struct h_conn *h_tls_dial(int port, const struct h_tls_opts *o, struct h_tls_result *res)
{
    static const struct h_tls_opts none;
    struct h_tls_result local;
    if (res == NULL)
        res = &local;
    int tcp = tcp_connect(port);
    int sv[2];
    cr_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s",
              strerror(errno));
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* Hold no copy of the test's other sockets: closing one of them must
         * reach the broker. */
        for (int fd = 3; fd < 4096; fd++)
            if (fd != tcp && fd != sv[1])
                close(fd);
        relay_main(tcp, sv[1], o ? o : &none);
        _exit(0);
    }
    close(tcp);
    close(sv[1]);
    char line[600];
    read_status(sv[0], line, sizeof line);
    parse_status(line, res);
    if (!res->ok) {
        close(sv[0]);
        return NULL;
    }
    return h_conn_wrap_fd(sv[0]);
}

struct h_conn *h_tls_client(int port, const char *version)
{
    struct h_tls_result res;
    struct h_conn *c = h_tls_dial(port, NULL, &res);
    cr_assert(c != NULL, "TLS handshake with port %d failed: %s", port, res.err);
    struct h_frame *f = h_stomp_connect(c, version, "guest", "guest", NULL, false);
    cr_assert(f != NULL && strcmp(f->cmd, "CONNECTED") == 0, "CONNECT over TLS got %s", h_show(f));
    return c;
}

size_t h_tls_client_hello(char *buf, size_t cap)
{
    struct stp_tls_client_opts co = {0};
    struct stp_tls_config *cfg = NULL;
    struct stp_tls_rng *rng = NULL;
    struct stp_tls *t = NULL;
    char err[256] = "";
    cr_assert(stp_tls_client_config_new(&cfg, &co, err, sizeof err) == 0, "client config: %s", err);
    cr_assert(stp_tls_rng_new(&rng) == 0 && stp_tls_new(&t, cfg, rng) == 0);
    cr_assert(stp_tls_handshake(t) == 0);
    const char *p;
    size_t len;
    cr_assert(stp_tls_out_take(t, &p, &len) == 0 && len > 0 && len <= cap);
    memcpy(buf, p, len);
    stp_tls_out_release(t);
    stp_tls_free(&t);
    stp_tls_rng_free(&rng);
    stp_tls_config_unref(&cfg);
    return len;
}

struct h_broker *h_tls_broker(const char *tls_url, const char *pair, int workers,
                              const char *const *extra)
{
    const char *args[48];
    size_t n = 0;
    args[n++] = "--listen";
    args[n++] = tls_url;
    args[n++] = "--tls-cert";
    args[n++] = h_tls_path(h_fmt("%s.crt", pair));
    args[n++] = "--tls-key";
    args[n++] = h_tls_path(h_fmt("%s.key", pair));
    for (size_t i = 0; extra && extra[i] && n < 47; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    return h_broker_start_ex(workers > 0 ? workers : 1, true, args, NULL);
}
