/*
 * 25_nats_harness.c - the NATS harness itself (nats_harness.h), against the
 * real nats-server: a plain TCP client reads the server's INFO line and gets
 * PONG for PING, JetStream is on when asked (and its store kept across
 * restarts), stop / restart on the same port / kill do what they say, the
 * cleanup ends the server (h_fini, or the test process dying), and cluster
 * nodes start with --cluster URL --node-name NAME and serve STOMP.
 *
 * Without nats-server installed these tests fail (scripts/dev.sh deps
 * installs it); they never skip.
 */
#include "nats_harness.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(nats_harness, .init = h_init, .fini = h_fini, .timeout = 60);

/* ------------------------------------------------- a tiny NATS text client */

/* One CRLF-terminated line from c within timeout_ms, without the CRLF
 * (registry-owned), or NULL on timeout / close. Bytes after the line stay in
 * c's buffer for the next call. */
static const char *nats_line(struct h_conn *c, int timeout_ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        char *eol = c->len > c->off ? memchr(c->buf + c->off, '\n', c->len - c->off) : NULL;
        if (eol != NULL) {
            size_t n = (size_t)(eol - (c->buf + c->off));
            const char *line =
                h_fmt("%.*s", (int)(n > 0 && eol[-1] == '\r' ? n - 1 : n), c->buf + c->off);
            c->off += n + 1;
            return line;
        }
        uint64_t now = h_now_ms();
        if (now >= deadline || c->fd < 0)
            return NULL;
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
            continue;
        cr_assert(c->len < c->cap - 1, "NATS line longer than %zu bytes", c->cap);
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            c->closed = r == 0 ? 1 : 2;
            return NULL;
        }
        if (r > 0)
            c->len += (size_t)r;
    }
}

/* Connect, read INFO, CONNECT + PING, expect PONG; returns the INFO JSON. */
static const char *nats_hello(struct h_nats *n)
{
    struct h_conn *c = h_dial_port(h_nats_port(n), 0);
    const char *info = nats_line(c, 3000);
    cr_assert(info != NULL, "no INFO line from nats-server on port %d", h_nats_port(n));
    cr_assert(strncmp(info, "INFO {", 6) == 0, "first line is not INFO {...}: %s", info);
    const char *hello = "CONNECT {\"verbose\":false}\r\nPING\r\n";
    h_send(c, hello, strlen(hello));
    const char *line = nats_line(c, 3000);
    cr_assert(line != NULL && strcmp(line, "PONG") == 0, "expected PONG, got %s",
              line ? line : "(nothing)");
    h_close(c);
    return info + 5;
}

/* True when a TCP connect to the port is refused (nothing listens). */
static bool port_refuses(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    int err = errno;
    close(fd);
    return r != 0 && err == ECONNREFUSED;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---------------------------------------------------------------- servers */

Test(nats_harness, plain_server_speaks_nats_on_loopback)
{
    struct h_nats *n = h_nats_start(false);
    cr_assert(n->port > 0 && n->port < 65536, "port %d", n->port);
    cr_assert_str_eq(h_nats_url(n), h_fmt("nats://127.0.0.1:%d", h_nats_port(n)));
    const char *info = nats_hello(n);
    cr_assert(strstr(info, "\"server_id\":") != NULL, "INFO without server_id: %s", info);
    cr_assert(strstr(info, "\"jetstream\":true") == NULL, "JetStream on without -js: %s", info);
    cr_assert(strstr(info, "\"host\":\"127.0.0.1\"") != NULL, "not on loopback: %s", info);
    cr_assert(h_count(h_nats_log(n), "Server is ready") == 1, "log:\n%s", h_nats_log(n));
    cr_assert(!is_dir(n->store_dir), "a store without JetStream");
}

Test(nats_harness, jetstream_is_on_with_its_store)
{
    struct h_nats *n = h_nats_start(true);
    const char *info = nats_hello(n);
    cr_assert(strstr(info, "\"jetstream\":true") != NULL, "INFO says no JetStream: %s", info);
    cr_assert(strstr(h_nats_log(n), n->store_dir) != NULL, "the log does not name %s:\n%s",
              n->store_dir, h_nats_log(n));
    cr_assert(is_dir(h_fmt("%s/jetstream", n->store_dir)), "no %s/jetstream", n->store_dir);
}

/* h_nats_request: JetStream's API answers (an account info, a stream made
 * and then described: Go's JSON writes '>' as \u003e); a subject nobody answers is NULL within the
 * time. */
Test(nats_harness, request_reaches_the_jetstream_api)
{
    struct h_nats *n = h_nats_start(true);
    const char *r = h_nats_request(n, "$JS.API.INFO", "", 3000);
    cr_assert(r && strstr(r, "\"type\":\"io.nats.jetstream.api.v1.account_info_response\""),
              "$JS.API.INFO: %s", r ? r : "(no answer)");
    r = h_nats_request(n, "$JS.API.STREAM.CREATE.HT",
                       "{\"name\":\"HT\",\"subjects\":[\"ht.>\"],\"storage\":\"memory\"}", 3000);
    cr_assert(r && strstr(r, "\"name\":\"HT\"") && !strstr(r, "\"error\""), "CREATE: %s",
              r ? r : "(no answer)");
    r = h_nats_request(n, "$JS.API.STREAM.INFO.HT", "", 3000);
    cr_assert(r && strstr(r, "\"subjects\":[\"ht.\\u003e\"]") && strstr(r, "\"messages\":0"),
              "INFO: %s", r ? r : "(no answer)");
    uint64_t t0 = h_now_ms();
    cr_assert_null(h_nats_request(n, "nobody.answers", "x", 300));
    cr_assert(h_now_ms() - t0 < 2000);
}

Test(nats_harness, two_servers_get_two_ports)
{
    struct h_nats *a = h_nats_start(false), *b = h_nats_start(true);
    cr_assert_neq(a->port, b->port);
    cr_assert_str_neq(a->dir, b->dir);
    nats_hello(a);
    nats_hello(b);
}

Test(nats_harness, stop_then_restart_on_the_same_port_and_store)
{
    struct h_nats *n = h_nats_start(true);
    int port = h_nats_port(n);
    const char *url = h_fmt("%s", h_nats_url(n));
    struct h_conn *held = h_dial_port(port, 0);
    cr_assert_not_null(nats_line(held, 3000));

    int rc = h_nats_stop(n);
    cr_assert(rc >= 0, "nats-server did not exit on SIGTERM within 5 s (rc %d)", rc);
    cr_assert(!h_nats_alive(n));
    cr_assert_null(nats_line(held, 3000), "a client connection outlived the server");
    cr_assert(held->closed, "the client was not closed when the server stopped");
    cr_assert(port_refuses(port), "port %d still accepts after the stop", port);
    cr_assert_eq(h_nats_stop(n), rc, "a second stop is not a no-op");

    h_nats_restart(n);
    cr_assert(h_nats_alive(n));
    cr_assert_eq(h_nats_port(n), port, "restarted on %d instead of %d", h_nats_port(n), port);
    cr_assert_str_eq(h_nats_url(n), url);
    cr_assert(strstr(nats_hello(n), "\"jetstream\":true") != NULL);
    cr_assert_eq(n->starts, 2u);
    const char *log = h_nats_log(n);
    cr_assert_eq(h_count(log, "Server is ready"), 2, "log:\n%s", log);
    cr_assert_eq(h_count(log, h_fmt("Store Directory: \"%s/jetstream\"", n->store_dir)), 2,
                 "both runs use the same store; log:\n%s", log);
}

Test(nats_harness, restart_of_a_running_server_stops_it_first)
{
    struct h_nats *n = h_nats_start(false);
    pid_t first = n->pid;
    h_nats_restart(n);
    cr_assert_neq(n->pid, first);
    cr_assert(kill(first, 0) != 0 && errno == ESRCH, "the first run %d still exists", first);
    nats_hello(n);
}

Test(nats_harness, kill_then_restart)
{
    struct h_nats *n = h_nats_start(true);
    int port = h_nats_port(n);
    pid_t pid = n->pid;
    h_nats_kill(n);
    cr_assert(!h_nats_alive(n));
    cr_assert(WIFSIGNALED(n->status) && WTERMSIG(n->status) == SIGKILL, "status 0x%x", n->status);
    cr_assert(kill(pid, 0) != 0 && errno == ESRCH, "pid %d still exists after the kill", pid);
    cr_assert(port_refuses(port));
    cr_assert_eq(h_nats_stop(n), -1, "stop after a kill reports the signal");
    h_nats_restart(n);
    cr_assert_eq(h_nats_port(n), port);
    cr_assert(strstr(nats_hello(n), "\"jetstream\":true") != NULL);
}

/* In a child process: start a server, report its pid and directory through
 * the pipe, then end the way `how` says: 'f' runs h_fini, 'x' just exits (a
 * test process that died: the server must die with it). */
static void child_server(int wfd, char how)
{
    struct h_nats *n = h_nats_start(true);
    dprintf(wfd, "%d %s\n", (int)n->pid, n->dir);
    close(wfd);
    if (how == 'f')
        h_fini();
    _exit(0);
}

static void check_cleanup(char how, bool dir_removed)
{
    int p[2];
    cr_assert(pipe(p) == 0);
    pid_t child = fork();
    cr_assert(child >= 0);
    if (child == 0) {
        close(p[0]);
        child_server(p[1], how);
    }
    close(p[1]);
    char line[256] = {0};
    FILE *fp = fdopen(p[0], "r");
    cr_assert(fp != NULL);
    bool got = fgets(line, sizeof line, fp) != NULL;
    fclose(fp);
    int st;
    cr_assert_eq(waitpid(child, &st, 0), child);
    cr_assert(got && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x, said '%s'", st,
              line);
    int pid = 0;
    char dir[200] = {0};
    cr_assert_eq(sscanf(line, "%d %199s", &pid, dir), 2, "child said '%s'", line);
    uint64_t deadline = h_now_ms() + 3000;
    while (kill(pid, 0) == 0 && h_now_ms() < deadline)
        h_sleep_ms(10);
    cr_assert(kill(pid, 0) != 0 && errno == ESRCH, "nats-server %d outlived its test", pid);
    if (dir_removed) {
        cr_assert(!is_dir(dir), "%s is still there after h_fini", dir);
    } else {
        h_sh(h_fmt("rm -rf '%s'", dir), 5000, NULL); /* what a died test leaves */
    }
}

Test(nats_harness, h_fini_ends_the_server_and_removes_its_directory)
{
    if (getenv("ITEST_KEEP_LOGS") != NULL)
        cr_skip_test("ITEST_KEEP_LOGS keeps the directories");
    check_cleanup('f', true);
}

Test(nats_harness, the_server_dies_with_its_test_process)
{
    check_cleanup('x', false);
}

/* ---------------------------------------------------------- cluster nodes */

/* The broker's command line as one string, arguments separated by spaces. */
static const char *cmdline(const struct h_broker *b)
{
    char *out = NULL;
    cr_assert_eq(h_sh(h_fmt("tr '\\0' ' ' </proc/%d/cmdline", (int)b->pid), 5000, &out), 0);
    return out;
}

Test(nats_harness, cluster_node_gets_its_flags_and_serves_stomp)
{
    struct h_nats *n = h_nats_start(false);
    struct h_broker *b = h_cluster_node(n, "node-a", NULL);
    const char *cl = cmdline(b);
    cr_assert(strstr(cl, h_fmt(" --cluster %s --node-name node-a ", h_nats_url(n))) != NULL,
              "command line: %s", cl);
    cr_assert(strstr(cl, " --listen stomp://127.0.0.1:0 ") != NULL, "command line: %s", cl);
    cr_assert(strstr(cl, " --workers 2 ") != NULL, "command line: %s", cl);
    cr_assert(h_broker_alive(b));
    h_bystander_topic_ok(b);

    struct h_broker *c = h_cluster_node(n, "node-b", "--workers", "1", NULL);
    cl = cmdline(c);
    cr_assert(strstr(cl, " --workers 1") != NULL && strstr(cl, " --workers 2") == NULL,
              "command line: %s", cl);
    cr_assert(strstr(cl, " --node-name node-b ") != NULL, "command line: %s", cl);
    h_bystander_topic_ok(c);
    h_broker_stop_ok(b);
    h_broker_stop_ok(c);
}

Test(nats_harness, cluster_node_with_a_ws_listener_for_healthz)
{
    struct h_nats *n = h_nats_start(true);
    struct h_broker *b = h_cluster_node(n, "node-ws", "--listen", "ws://127.0.0.1:0/ws", NULL);
    cr_assert_eq(b->nports, 2, "log:\n%s", h_broker_log(b));
    const char *body = h_http_get(h_listener_port(b, "ws"), "/healthz");
    cr_assert(strstr(body, "\"status\":") != NULL, "/healthz: %s", body);
    h_bystander_ok(b);
}

Test(nats_harness, cluster_node_ex_takes_any_url)
{
    const char *url = "nats://127.0.0.1:1";
    struct h_broker *b = h_cluster_node_ex(url, "lonely", 1, NULL, NULL);
    const char *cl = cmdline(b);
    cr_assert(strstr(cl, " --cluster nats://127.0.0.1:1 --node-name lonely ") != NULL, "%s", cl);
    h_bystander_topic_ok(b);
}

Test(nats_harness, broker_log_wait)
{
    struct h_broker *b = H_START0();
    uint64_t t0;
    cr_assert(h_broker_log_wait(b, "listening on stomp://127.0.0.1:", 1000));
    cr_assert(h_broker_log_wait_n(b, "listening on stomp://", 1, 1000));
    t0 = h_now_ms();
    cr_assert(!h_broker_log_wait_n(b, "listening on stomp://", 2, 200), "one listener, one line");
    cr_assert_geq(h_now_ms() - t0, 200);
    t0 = h_now_ms();
    cr_assert(!h_broker_log_wait(b, "a line no broker writes", 300));
    uint64_t took = h_now_ms() - t0;
    cr_assert(took >= 300 && took < 3000, "waited %llu ms for 300", (unsigned long long)took);
    h_broker_stop_ok(b);
    t0 = h_now_ms();
    cr_assert(!h_broker_log_wait(b, "a line no broker writes", 5000));
    cr_assert_lt(h_now_ms() - t0, 1000, "waited on an exited broker");
    cr_assert(h_broker_log_wait(b, "listening on", 5000), "the log of an exited broker");
}
