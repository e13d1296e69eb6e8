/*
 * 11_cli.c - the command line: --help and --version, unknown flags and bad
 * values (one line on stderr, exit 2), the STAMPEDE_* environment twins and
 * flags beating them, the start-up log, and SIGTERM/SIGINT exiting 0 promptly.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <ctype.h>
#include <sched.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

TestSuite(cli, .init = h_init, .fini = h_fini, .timeout = 30);

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

Test(cli, help)
{
    char *out = NULL, *err = NULL;
    int rc = h_run(ARGS("--help"), NULL, 5000, &out, &err);
    cr_assert_eq(rc, 0, "--help exited %d; stderr: %s", rc, err);
    const char *flags[] = {"--listen",
                           "--workers",
                           "--user",
                           "--max-frame-size",
                           "--max-headers",
                           "--max-header-length",
                           "--login-timeout",
                           "--heartbeat-min",
                           "--heartbeat-max",
                           "--queue-max-messages",
                           "--queue-max-bytes",
                           "--max-pending-output",
                           "--help",
                           "--version"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        cr_assert(strstr(out, flags[i]) != NULL, "--help does not mention %s:\n%s", flags[i], out);
    cr_assert(strstr(out, "STAMPEDE_") != NULL, "--help does not mention the environment:\n%s",
              out);
}

Test(cli, version)
{
    char *out = NULL, *err = NULL;
    int rc = h_run(ARGS("--version"), NULL, 5000, &out, &err);
    cr_assert_eq(rc, 0, "--version exited %d; stderr: %s", rc, err);
    const char *ver = getenv("ITEST_VERSION");
    cr_assert(ver != NULL);
    cr_assert(strstr(out, ver) != NULL, "--version printed '%s', want %s", out, ver);
}

/* One line on stderr naming one of the `names`; exit 2. */
static void rejects(const char *const *args, const char *const *env, const char *name1,
                    const char *name2)
{
    char *out = NULL, *err = NULL;
    int rc = h_run(args, env, 5000, &out, &err);
    char what[256] = "";
    for (size_t i = 0; args[i]; i++)
        snprintf(what + strlen(what), sizeof what - strlen(what), "%s ", args[i]);
    for (size_t i = 0; env && env[i]; i++)
        snprintf(what + strlen(what), sizeof what - strlen(what), "[%s] ", env[i]);
    cr_assert_eq(rc, 2, "%s: exit %d, want 2; stderr: %s", what, rc, err);
    cr_assert(count_lines(err) == 1 && err[strlen(err) - 1] == '\n',
              "%s: want exactly one line on stderr, got:\n%s", what, err);
    cr_assert(strstr(err, name1) != NULL || (name2 && strstr(err, name2) != NULL),
              "%s: the line does not name '%s'%s%s: %s", what, name1, name2 ? " or " : "",
              name2 ? name2 : "", err);
}

Test(cli, unknown_flag)
{
    rejects(ARGS("--frobnicate"), NULL, "frobnicate", NULL);
    rejects(ARGS("--listen", "stomp://127.0.0.1:0", "--bogus-flag=3"), NULL, "bogus-flag", NULL);
    rejects(ARGS("-z"), NULL, "-z", NULL);
    rejects(ARGS("stray-argument"), NULL, "stray-argument", NULL);
}

Test(cli, bad_values)
{
    struct {
        const char *flag, *value;
    } bad[] = {
        {"--workers", "abc"},
        {"--workers", "-1"},
        {"--workers", "2x"},
        {"--max-frame-size", "lots"},
        {"--max-headers", "-5"},
        {"--max-header-length", "1.5.6"},
        {"--login-timeout", "5parsecs"},
        {"--heartbeat-min", "x"},
        {"--heartbeat-max", "-1s"},
        {"--queue-max-messages", "many"},
        {"--queue-max-bytes", "some"},
        {"--max-pending-output", "?"},
        {"--listen", "http://127.0.0.1:1"},
        {"--listen", "stomp://127.0.0.1:99999"},
        {"--listen", "nonsense"},
        {"--user", "no-colon"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        rejects(ARGS(bad[i].flag, bad[i].value), NULL, bad[i].flag + 2, bad[i].value);
    /* A flag without its value. */
    rejects(ARGS("--workers"), NULL, "workers", NULL);
    rejects(ARGS("--listen", "stomp://127.0.0.1:0", "--login-timeout"), NULL, "login-timeout",
            NULL);
}

Test(cli, bad_environment_value)
{
    rejects(ARGS("--listen", "stomp://127.0.0.1:0"), ARGS("STAMPEDE_WORKERS=abc"), "WORKERS",
            "workers");
    rejects(ARGS("--listen", "stomp://127.0.0.1:0"), ARGS("STAMPEDE_LOGIN_TIMEOUT=soon"),
            "LOGIN_TIMEOUT", "login-timeout");
}

Test(cli, listen_from_environment_list)
{
    struct h_broker *b = h_broker_start_ex(
        2, false, NULL, ARGS("STAMPEDE_LISTEN=stomp://127.0.0.1:0,stomp://127.0.0.1:0"));
    cr_assert_eq(b->nports, 2, "want two listeners, log:\n%s", h_broker_log(b));
    cr_assert_neq(b->ports[0], b->ports[1]);
    for (int i = 0; i < 2; i++) {
        struct h_conn *c = h_dial_port(b->ports[i], 0);
        struct h_frame *f = h_stomp_connect(c, "1.2", NULL, NULL, NULL, false);
        cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0, "listener %d: %s", i, h_show(f));
    }
    h_broker_stop_ok(b);
}

Test(cli, repeated_listen_flag)
{
    struct h_broker *b = H_START("--listen", "stomp://127.0.0.1:0");
    cr_assert_eq(b->nports, 2, "want two listeners, log:\n%s", h_broker_log(b));
    struct h_conn *c = h_dial_port(b->ports[1], 0);
    struct h_frame *f = h_stomp_connect(c, "1.1", NULL, NULL, NULL, false);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0, "second listener: %s", h_show(f));
    h_broker_stop_ok(b);
}

static bool closed_within(struct h_broker *b, int ms)
{
    struct h_conn *c = h_dial(b);
    struct h_frame *f = NULL;
    bool closed = h_wait_closed(c, ms, &f);
    if (!closed && f != NULL && strcmp(f->cmd, "ERROR") == 0)
        closed = h_wait_closed(c, 2000, &f);
    return closed;
}

Test(cli, environment_twin_and_flag_beats_it)
{
    struct h_broker *b = h_broker_start_ex(2, true, NULL, ARGS("STAMPEDE_LOGIN_TIMEOUT=300ms"));
    cr_assert(closed_within(b, 2000), "STAMPEDE_LOGIN_TIMEOUT=300ms: silent client still open");
    h_broker_stop_ok(b);
    b = h_broker_start_ex(2, true, ARGS("--login-timeout", "5s"),
                          ARGS("STAMPEDE_LOGIN_TIMEOUT=300ms"));
    cr_assert(!closed_within(b, 1200),
              "--login-timeout 5s with STAMPEDE_LOGIN_TIMEOUT=300ms: closed early (env won)");
    h_broker_stop_ok(b);
    /* STAMPEDE_USER turns authentication on. */
    b = h_broker_start_ex(2, true, NULL, ARGS("STAMPEDE_USER=envuser:envpass"));
    struct h_conn *c = h_dial(b);
    struct h_frame *f = h_stomp_connect(c, "1.2", "someone", "else", NULL, false);
    cr_assert(f && strcmp(f->cmd, "ERROR") == 0, "STAMPEDE_USER set, wrong login got %s",
              h_show(f));
    h_client_login(b, "1.2", "envuser", "envpass");
    h_broker_stop_ok(b);
}

/* The start-up log names the worker count. */
static bool log_says_workers(const char *log, int n)
{
    regex_t re;
    char pat[160];
    snprintf(pat, sizeof pat, "([^0-9.:]%d workers?([^a-z]|$))|(workers?[=: ]+%d([^0-9]|$))", n, n);
    cr_assert(regcomp(&re, pat, REG_EXTENDED | REG_ICASE | REG_NEWLINE) == 0);
    bool m = regexec(&re, log, 0, NULL, 0) == 0;
    regfree(&re);
    return m;
}

Test(cli, startup_log)
{
    struct h_broker *b = h_broker_start_ex(3, true, NULL, NULL);
    const char *log = h_broker_log(b);
    const char *ver = getenv("ITEST_VERSION");
    cr_assert(strstr(log, ver) != NULL, "start-up log does not give the version %s:\n%s", ver, log);
    cr_assert(strstr(log, "listening on stomp://127.0.0.1:") != NULL, "log:\n%s", log);
    cr_assert(log_says_workers(log, 3), "start-up log does not give the worker count 3:\n%s", log);
    cr_assert(strcasestr(log, "auth") != NULL,
              "no users given, but the log does not say authentication is off:\n%s", log);
    h_broker_stop_ok(b);
    /* STAMPEDE_WORKERS works, and --workers beats it. */
    b = h_broker_start_ex(2, true, NULL, ARGS("STAMPEDE_WORKERS=3"));
    cr_assert(log_says_workers(h_broker_log(b), 2), "--workers 2 with STAMPEDE_WORKERS=3:\n%s",
              h_broker_log(b));
    h_broker_stop_ok(b);
}

/* Without --workers the broker runs one worker per CPU it may use. */
Test(cli, default_workers_follow_affinity)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    cr_assert(sched_getaffinity(0, sizeof set, &set) == 0);
    int first = -1;
    for (int i = 0; i < CPU_SETSIZE && first < 0; i++)
        if (CPU_ISSET(i, &set))
            first = i;
    cr_assert(first >= 0);
    CPU_ZERO(&set);
    CPU_SET(first, &set);
    /* This test runs in its own process: narrowing its affinity is local. */
    cr_assert(sched_setaffinity(0, sizeof set, &set) == 0);
    struct h_broker *b = h_broker_start_ex(0, true, NULL, NULL);
    cr_assert(log_says_workers(h_broker_log(b), 1),
              "affinity of one CPU and no --workers, but the log says:\n%s", h_broker_log(b));
    struct h_conn *c = h_client(b, "1.2");
    const char *q = h_dest("queue", "one");
    h_publish(c, q, "solo", true);
    h_subscribe(c, q, "s", NULL, NULL);
    h_expect_msg(c, "solo");
    h_broker_stop_ok(b);
}

static void stops_on(int sig)
{
    struct h_broker *b = H_START0();
    const char *q = h_dest("queue", "stop");
    struct h_conn *sub = h_client(b, "1.2"), *pub = h_client(b, "1.1"), *raw = h_dial(b);
    h_subscribe(sub, q, "s", "client-individual", NULL);
    h_publish(pub, q, "held", true);
    h_expect_msg(sub, "held");
    h_send(raw, "SEND\ndest", 9);
    uint64_t t0 = h_now_ms();
    int rc = h_broker_stop_sig(b, sig, 5000);
    uint64_t dt = h_now_ms() - t0;
    cr_assert_eq(rc, 0, "signal %d: exit %d (-2 = still running after 5 s); log:\n%s", sig, rc,
                 h_broker_log(b));
    cr_assert(dt < 3000, "signal %d: took %llu ms to exit", sig, (unsigned long long)dt);
    struct h_conn *cs[3] = {sub, pub, raw};
    for (int i = 0; i < 3; i++) {
        struct h_frame *f = NULL;
        bool closed = h_wait_closed(cs[i], 1000, &f);
        if (!closed && f != NULL && strcmp(f->cmd, "ERROR") == 0)
            closed = h_wait_closed(cs[i], 1000, &f);
        cr_assert(closed, "client %d not closed after the broker exited (%s)", i, h_show(f));
    }
}

Test(cli, sigterm_exits_0_promptly)
{
    stops_on(SIGTERM);
}

Test(cli, sigint_exits_0_promptly)
{
    stops_on(SIGINT);
}

/* SIGTERM flushes what is pending: a topic subscriber whose messages were
 * accepted (the publisher has its RECEIPT) still gets every one before the close,
 * even when most of them are still in the broker's output queue. */
Test(cli, sigterm_flushes_pending_output)
{
    struct h_broker *b = H_START0();
    const char *t = h_dest("topic", "flush");
    struct h_conn *sub = h_dial_port(b->port, 4096);
    struct h_frame *f = h_stomp_connect(sub, "1.2", NULL, NULL, NULL, false);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0, "got %s", h_show(f));
    h_subscribe(sub, t, "s", NULL, NULL);
    struct h_conn *pub = h_client(b, "1.2");
    enum { N = 1500, BODY = 1000 };
    char body[BODY + 1];
    memset(body, 'f', BODY);
    body[BODY] = '\0';
    for (int i = 0; i < N; i++)
        h_sendf(pub, "SEND\ndestination:%s\nseq:%d\n%s\n%s", t, i,
                i == N - 1 ? "receipt:all\n" : "", body);
    h_expect_receipt(pub, "all");
    kill(b->pid, SIGTERM);
    for (int i = 0; i < N; i++) {
        struct h_frame *g = h_read(sub, 5000);
        cr_assert(g != NULL, "after SIGTERM the subscriber got %d of %d accepted messages, then %s",
                  i, N, sub->closed ? "the close" : "nothing");
        cr_assert_str_eq(g->cmd, "MESSAGE", "message %d: got %s", i, h_show(g));
        cr_assert_str_eq(h_hdr(g, "seq"), h_fmt("%d", i));
    }
    struct h_frame *more = NULL;
    bool closed = h_wait_closed(sub, 5000, &more);
    if (!closed && more != NULL && strcmp(more->cmd, "ERROR") == 0)
        closed = h_wait_closed(sub, 2000, &more);
    cr_assert(closed, "subscriber not closed after SIGTERM (%s)", h_show(more));
    int rc = h_broker_stop_sig(b, 0, 5000); /* signal 0: just wait */
    cr_assert_eq(rc, 0, "exit %d after SIGTERM; log:\n%s", rc, h_broker_log(b));
}

Test(cli, idle_broker_stops)
{
    struct h_broker *b = h_broker_start_ex(4, true, NULL, NULL);
    uint64_t t0 = h_now_ms();
    h_broker_stop_ok(b);
    cr_assert(h_now_ms() - t0 < 2000, "idle broker took %llu ms to stop",
              (unsigned long long)(h_now_ms() - t0));
}
