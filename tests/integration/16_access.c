/*
 * 16_access.c - access control (issue 11) against the real broker: the
 * `stampede hash-password` command; --users-file made from its output at
 * test time (right and wrong passcodes, unknown logins, the one refusal
 * text, stampede_failed_logins_total on /metrics, what the log says and
 * never says); configurations the broker refuses to start with; frames
 * pipelined behind a CONNECT whose check runs on the thread pool; --acl-file
 * (private queues with {login}, `*` and `**`, read-only users, reply-to);
 * --anonymous-user; --tls-cert-login with client certificates made with
 * openssl at test time; and the default without users (loopback only).
 *
 * Every refused login counts toward its source address's failed-login
 * backoff (5 free failures a minute), so tests with several refusals dial
 * them from their own loopback addresses (h_set_source). Each test starts its
 * own broker; every wait is bounded (harness.h).
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* The one answer to every refused login (session_connect.c). */
#define REFUSED "Bad CONNECT"
/* RabbitMQ's words: only the login the client sent appears, whatever was wrong. */
#define REFUSED_BODY(login) h_fmt("Access refused for user '%s'", (login) ? (login) : "")

/* ---- temporary files, removed at the end of each test ---- */

static char *tmp_files[32];
static size_t ntmp;

static void access_fini(void)
{
    for (size_t i = 0; i < ntmp; i++) {
        unlink(tmp_files[i]);
        free(tmp_files[i]);
    }
    ntmp = 0;
    h_fini();
}

TestSuite(access, .init = h_init, .fini = access_fini, .timeout = 60);

/* Write text into a fresh file; its path (registry-owned). */
static const char *write_file(const char *tag, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "/tmp/stampede-itest-access-%d-%s-XXXXXX", (int)getpid(), tag);
    int fd = mkstemp(path);
    cr_assert(fd >= 0, "mkstemp %s", path);
    size_t len = strlen(text);
    cr_assert(write(fd, text, len) == (ssize_t)len, "write %s", path);
    close(fd);
    cr_assert(ntmp < sizeof tmp_files / sizeof tmp_files[0]);
    tmp_files[ntmp++] = strdup(path);
    return h_fmt("%s", path);
}

/* `printf '%s\n' PW | stampede hash-password`: asserts exit 0 and exactly one
 * argon2id PHC line on stdout (stderr goes to the test's output); the hash
 * without its LF. */
static const char *hash_pw(const char *pw)
{
    char *out = NULL;
    int rc = h_sh(h_fmt("printf '%%s\\n' '%s' | '%s' hash-password 2>/dev/null", pw, h_bin()),
                  20000, &out);
    cr_assert(rc == 0, "hash-password exited %d: %s", rc, out);
    size_t n = strlen(out);
    cr_assert(n > 1 && out[n - 1] == '\n' && memchr(out, '\n', n) == out + n - 1,
              "hash-password did not print exactly one line: '%s'", out);
    cr_assert(strncmp(out, "$argon2id$v=19$m=", 17) == 0, "not an argon2id PHC string: %s", out);
    return h_fmt("%.*s", (int)(n - 1), out);
}

/* A users file: pairs of login and password, NULL-terminated. */
static const char *users_file(const char *const *pairs)
{
    const char *text = "# made by 16_access.c\n";
    for (size_t i = 0; pairs[i] && pairs[i + 1]; i += 2)
        text = h_fmt("%s%s:%s\n", text, pairs[i], hash_pw(pairs[i + 1]));
    return write_file("users", text);
}

/* Wait up to ms for needle in the broker's log. */
static bool log_has(struct h_broker *b, const char *needle, int ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)ms;
    for (;;) {
        if (strstr(h_broker_log(b), needle))
            return true;
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(20);
    }
}

/* Wait up to ms for a log line that holds both a and b. */
static bool log_line_has(struct h_broker *b, const char *a, const char *b2, int ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)ms;
    for (;;) {
        for (const char *p = h_broker_log(b); p && *p;) {
            const char *eol = strchr(p, '\n');
            size_t n = eol ? (size_t)(eol - p) : strlen(p);
            const char *line = h_fmt("%.*s", (int)n, p);
            if (strstr(line, a) && strstr(line, b2))
                return true;
            p = eol ? eol + 1 : NULL;
        }
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(20);
    }
}

/* CONNECT (1.2) on a dialled connection; asserts ERROR Bad CONNECT with
 * the one body text, then the close. */
static void expect_refused(struct h_conn *c, const char *login, const char *pass)
{
    struct h_frame *f = h_stomp_connect(c, "1.2", login, pass, NULL, false);
    cr_assert(f != NULL, "CONNECT login %s: no answer", login ? login : "(none)");
    cr_assert(strcmp(f->cmd, "ERROR") == 0 && h_hdr(f, "message") &&
                  strcmp(h_hdr(f, "message"), REFUSED) == 0,
              "CONNECT login %s: expected ERROR message:%s, got %s", login ? login : "(none)",
              REFUSED, h_show(f));
    cr_assert(strcmp(f->body, REFUSED_BODY(login)) == 0, "CONNECT login %s: ERROR body '%s'",
              login ? login : "(none)", f->body);
    struct h_frame *more = NULL;
    cr_assert(h_wait_closed(c, 3000, &more), "not closed after the refusal (%s)",
              more ? h_show(more) : "still open");
}

static struct h_conn *login_ok(struct h_broker *b, const char *login, const char *pass)
{
    return h_client_login(b, "1.2", login, pass);
}

/* ===================================================================== */
/* 1. stampede hash-password                                              */
/* ===================================================================== */

Test(access, hash_password_cli)
{
    const char *h1 = hash_pw("secret");
    /* $argon2id$v=19$m=19456,t=2,p=1$SALT$HASH, both unpadded base64. */
    cr_assert(strncmp(h1, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0, "parameters: %s", h1);
    const char *salt = h1 + 31, *dollar = strchr(salt, '$');
    cr_assert(dollar != NULL && dollar > salt && strchr(dollar + 1, '$') == NULL, "shape: %s", h1);
    cr_assert(strspn(salt, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") ==
                  (size_t)(dollar - salt),
              "salt is not base64: %s", h1);
    cr_assert(
        strspn(dollar + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") ==
            strlen(dollar + 1),
        "hash is not base64: %s", h1);
    /* A fresh salt each time. */
    cr_assert(strcmp(h1, hash_pw("secret")) != 0, "two hashes of one password are equal");

    /* `echo secret | stampede hash-password` exactly, stdout and stderr apart. */
    char *out = NULL;
    int rc = h_sh(h_fmt("echo secret | '%s' hash-password 2>/dev/null", h_bin()), 20000, &out);
    cr_assert(rc == 0 && strncmp(out, "$argon2id$", 10) == 0 && strchr(out, '\n') &&
                  strchr(out, '\n')[1] == '\0',
              "echo secret | hash-password: rc %d, stdout '%s'", rc, out);
    rc = h_sh(h_fmt("echo secret | '%s' hash-password 2>&1 >/dev/null", h_bin()), 20000, &out);
    cr_assert(rc == 0 && out[0] == '\0', "hash-password wrote on stderr: '%s'", out);

    /* An extra argument: exit 2, one line on stderr, nothing on stdout. */
    char *err = NULL;
    rc = h_run(ARGS("hash-password", "secret"), NULL, 10000, &out, &err);
    cr_assert(rc == 2, "hash-password secret: exit %d", rc);
    cr_assert(out[0] == '\0', "hash-password secret: stdout '%s'", out);
    cr_assert_str_eq(err, "stampede: hash-password takes no arguments: it reads the password on "
                          "stdin\n");

    /* Empty stdin (/dev/null), and an empty line: exit 2, one line. */
    rc = h_run(ARGS("hash-password"), NULL, 10000, &out, &err);
    cr_assert(rc == 2, "hash-password < /dev/null: exit %d", rc);
    cr_assert(out[0] == '\0', "hash-password < /dev/null: stdout '%s'", out);
    cr_assert_str_eq(err, "stampede: hash-password: empty password\n");
    rc = h_sh(h_fmt("echo | '%s' hash-password", h_bin()), 10000, &out);
    cr_assert(rc == 2, "echo | hash-password: exit %d", rc);
    cr_assert_str_eq(out, "stampede: hash-password: empty password\n");
}

/* ===================================================================== */
/* 2. --users-file                                                        */
/* ===================================================================== */

/* Poll /metrics until series == want (3 s); the last value. */
static double metric_until(int port, const char *series, double want)
{
    double v = -1;
    for (uint64_t deadline = h_now_ms() + 3000; h_now_ms() < deadline; h_sleep_ms(20)) {
        v = h_metric(h_http_get(port, "/metrics"), series);
        if (v == want)
            break;
    }
    return v;
}

Test(access, users_file_logins)
{
    const char *users = users_file(ARGS("alice", "Alice-Pass-4f1c", "bob", "Bob-Pass-88e2"));
    struct h_broker *b = H_START_WS(2, "--users-file", users);
    int ws = h_listener_port(b, "ws");
    cr_assert(log_has(b, h_fmt("2 users from %s", users), 3000), "no users line:\n%s",
              h_broker_log(b));
    cr_assert_eq(h_metric(h_http_get(ws, "/metrics"), "stampede_failed_logins_total"), 0);

    /* The right passcodes: CONNECTED, and the session works. */
    struct h_conn *alice = login_ok(b, "alice", "Alice-Pass-4f1c");
    struct h_conn *bob = login_ok(b, "bob", "Bob-Pass-88e2");
    const char *q = h_dest("queue", "users");
    h_subscribe(bob, q, "s", NULL, NULL);
    h_publish(alice, q, "from alice", true);
    h_expect_msg(bob, "from alice");

    /* Wrong passcode, unknown login, missing passcode: the same ERROR. */
    h_set_source("127.0.16.1");
    expect_refused(h_dial(b), "alice", "Wrong-Guess-6b0d");
    h_set_source("127.0.16.2");
    expect_refused(h_dial(b), "mallory", "Mallory-Guess-19aa");
    h_set_source("127.0.16.3");
    expect_refused(h_dial(b), "alice", NULL);
    h_set_source(NULL);
    cr_assert_eq(metric_until(ws, "stampede_failed_logins_total", 3), 3,
                 "stampede_failed_logins_total after three refusals");

    /* The log names the address and the login, never a passcode. */
    cr_assert(log_line_has(b, "127.0.16.1:", "login failed for 'alice'", 3000),
              "wrong passcode not logged:\n%s", h_broker_log(b));
    cr_assert(log_line_has(b, "127.0.16.2:", "login failed for 'mallory' (no such user)", 3000),
              "unknown login not logged:\n%s", h_broker_log(b));
    cr_assert(log_line_has(b, "127.0.16.3:", "login failed for 'alice' (no passcode)", 3000),
              "missing passcode not logged:\n%s", h_broker_log(b));
    const char *log = h_broker_log(b);
    const char *secrets[] = {"Alice-Pass", "Bob-Pass", "Wrong-Guess", "Mallory-Guess"};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        cr_assert(strstr(log, secrets[i]) == NULL, "the log shows a passcode (%s):\n%s", secrets[i],
                  log);

    /* The logged-in clients were not disturbed. */
    h_publish(alice, q, "still here", true);
    h_expect_msg(bob, "still here");
    h_disconnect(alice);
    h_disconnect(bob);
    h_broker_stop_ok(b);
}

/* Run the broker with args; asserts exit 2 and exactly one line on stderr,
 * which is returned. */
static const char *exit2(const char *const *args)
{
    char *out = NULL, *err = NULL;
    int rc = h_run(args, NULL, 10000, &out, &err);
    cr_assert(rc == 2, "expected exit 2, got %d; stderr:\n%s", rc, err);
    size_t n = strlen(err);
    cr_assert(n > 0 && err[n - 1] == '\n' && memchr(err, '\n', n) == err + n - 1,
              "expected one line on stderr, got:\n%s", err);
    return err;
}

Test(access, bad_configurations_exit_2)
{
    const char *h = hash_pw("Alice-Pass-4f1c");
    const char *good = write_file("good", h_fmt("alice:%s\n", h));
    const char *acl = write_file("acl", "* readwrite /queue/{login}.**\n");
    const char *listen = "stomp://127.0.0.1:0";

    /* A malformed line: FILE:LINE. */
    const char *bad = write_file("bad", h_fmt("# users\nalice:%s\nthis line has no colon\n", h));
    cr_assert_str_eq(exit2(ARGS("--listen", listen, "--users-file", bad)),
                     h_fmt("stampede: --users-file: %s:3: expected LOGIN:HASH\n", bad));
    /* A plain-text "hash": refused, and the message does not quote it. */
    const char *plain = write_file("plain", "bob:Plain-Text-Secret\n");
    const char *err = exit2(ARGS("--listen", listen, "--users-file", plain));
    cr_assert(strstr(err, h_fmt("%s:1: ", plain)) != NULL, "%s", err);
    cr_assert(strstr(err, "Plain-Text-Secret") == NULL, "the error quotes the hash: %s", err);
    /* A login given twice. */
    const char *twice = write_file("twice", h_fmt("alice:%s\nalice:%s\n", h, h));
    err = exit2(ARGS("--listen", listen, "--users-file", twice));
    cr_assert(strstr(err, h_fmt("%s:2: ", twice)) != NULL, "%s", err);

    /* Flags that do not go together. */
    cr_assert_str_eq(exit2(ARGS("--listen", listen, "--users-file", good, "--user", "bob:bob")),
                     "stampede: --users-file and --user: use one of them\n");
    cr_assert_str_eq(
        exit2(ARGS("--listen", listen, "--users-file", good, "--anonymous-user", "nobody")),
        "stampede: --anonymous-user nobody: no such user in --users-file\n");
    cr_assert_str_eq(exit2(ARGS("--listen", listen, "--acl-file", acl)),
                     "stampede: --acl-file needs --users-file or --user\n");
    cr_assert_str_eq(exit2(ARGS("--listen", listen, "--anonymous-user", "guest")),
                     "stampede: --anonymous-user needs --users-file or --user\n");
    cr_assert_str_eq(exit2(ARGS("--listen", listen, "--users-file", good, "--tls-cert-login")),
                     "stampede: --tls-cert-login needs --tls-verify-client optional or "
                     "required\n");
    cr_assert_str_eq(exit2(ARGS("--listen", listen, "--users-file", "/nonexistent/users")),
                     "stampede: --users-file: cannot read '/nonexistent/users': No such file or "
                     "directory\n");

    /* And the good file starts. */
    struct h_broker *b = H_START("--users-file", good, "--acl-file", acl);
    h_disconnect(login_ok(b, "alice", "Alice-Pass-4f1c"));
    h_broker_stop_ok(b);
}

/* ===================================================================== */
/* 3. Pipelining behind a CONNECT that is checked on the thread pool      */
/* ===================================================================== */

Test(access, pipelined_connect_subscribe_send)
{
    const char *users = users_file(ARGS("alice", "Alice-Pass-4f1c"));
    struct h_broker *b = H_START("--users-file", users);
    const char *q = h_dest("queue", "pipe");
    for (int round = 0; round < 3; round++) {
        struct h_conn *c = h_dial(b);
        /* Three frames, NULs included, sent in one write. */
        char buf[1024];
        int n = snprintf(buf, sizeof buf,
                         "CONNECT\naccept-version:1.2\nhost:/\nlogin:alice\n"
                         "passcode:Alice-Pass-4f1c\n\n");
        buf[n++] = '\0';
        n += snprintf(buf + n, sizeof buf - (size_t)n,
                      "SUBSCRIBE\ndestination:%s\nid:s\nreceipt:sub\n\n", q);
        buf[n++] = '\0';
        n += snprintf(buf + n, sizeof buf - (size_t)n, "SEND\ndestination:%s\n\npipelined %d", q,
                      round);
        buf[n++] = '\0';
        h_send(c, buf, (size_t)n); /* one write */
        const char *want[] = {"CONNECTED", "RECEIPT", "MESSAGE"};
        for (int i = 0; i < 3; i++) {
            struct h_frame *f = h_read(c, H_WAIT);
            cr_assert(f != NULL && strcmp(f->cmd, want[i]) == 0,
                      "round %d frame %d: expected %s, got %s", round, i, want[i], h_show(f));
            if (i == 0)
                c->version = 12;
            if (i == 1)
                cr_assert_str_eq(h_hdr(f, "receipt-id"), "sub");
            if (i == 2)
                cr_assert_str_eq(f->body, h_fmt("pipelined %d", round));
        }
        h_disconnect(c);
    }
    /* A refused CONNECT with frames behind it: ERROR, and none of them runs. */
    struct h_conn *sub = login_ok(b, "alice", "Alice-Pass-4f1c");
    const char *t = h_dest("queue", "pipe-refused");
    h_subscribe(sub, t, "s", NULL, NULL);
    struct h_conn *c = h_dial(b);
    char buf[1024];
    int n = snprintf(buf, sizeof buf,
                     "CONNECT\naccept-version:1.2\nhost:/\nlogin:alice\npasscode:wrong\n\n");
    buf[n++] = '\0';
    n += snprintf(buf + n, sizeof buf - (size_t)n, "SEND\ndestination:%s\n\nsmuggled", t);
    buf[n++] = '\0';
    h_send(c, buf, (size_t)n);
    h_expect_error_msg(c, NULL, REFUSED);
    h_publish(sub, t, "legit", true);
    h_expect_msg(sub, "legit"); /* the first message: "smuggled" never went in */
    h_disconnect(sub);
    h_broker_stop_ok(b);
}

/* ===================================================================== */
/* 4. --acl-file                                                          */
/* ===================================================================== */

#define PW(login) login "-Pass-0a7e"

static const char acl_text[] = "# private queues\n"
                               "*      readwrite  /queue/{login}.**\n"
                               "carol  read       /topic/news/*\n"
                               "carol  read       /topic/feed/**\n"
                               "dave   read       /topic/ro/**\n"
                               "alice  readwrite  /topic/ro/**\n"
                               "guest  readwrite  /queue/bystander-**\n";

static struct h_broker *acl_broker(void)
{
    const char *users = users_file(ARGS("alice", PW("alice"), "bob", PW("bob"), "carol",
                                        PW("carol"), "dave", PW("dave"), "guest", "guest"));
    const char *acl = write_file("acl", acl_text);
    struct h_broker *b = H_START("--users-file", users, "--acl-file", acl);
    cr_assert(log_has(b, "6 ACL rules from ", 3000), "no ACL line:\n%s", h_broker_log(b));
    return b;
}

/* SUBSCRIBE (send_refused: SEND) with a receipt; asserts the ERROR "access_refused" carrying that
 * receipt, then the close. */
static void sub_refused(struct h_conn *c, const char *dest)
{
    h_sendf(c, "SUBSCRIBE\ndestination:%s\nid:x\nreceipt:denied\n\n", dest);
    struct h_frame *f = h_expect_error_msg(c, "denied", "access_refused");
    const char *want = h_fmt("access to %s refused for user '", dest);
    cr_assert(strncmp(f->body, want, strlen(want)) == 0 &&
                  strstr(f->body, "(this login may not subscribe to it)"),
              "body: %s", f->body);
}

static void send_refused(struct h_conn *c, const char *dest, const char *extra, const char *denied)
{
    h_sendf(c, "SEND\ndestination:%s\n%sreceipt:denied\n\nnot allowed", dest, extra);
    struct h_frame *f = h_expect_error_msg(c, "denied", "access_refused");
    const char *want = h_fmt("access to %s refused for user '", denied);
    cr_assert(strncmp(f->body, want, strlen(want)) == 0 &&
                  strstr(f->body, "(this login may not send to it)"),
              "body: %s", f->body);
}

Test(access, acl_private_queues)
{
    struct h_broker *b = acl_broker();
    /* A bystander, connected throughout. */
    struct h_conn *by = login_ok(b, "bob", PW("bob"));
    h_subscribe(by, "/queue/bob.inbox", "in", NULL, NULL);

    struct h_conn *alice = login_ok(b, "alice", PW("alice"));
    h_subscribe(alice, "/queue/alice.x", "x", NULL, NULL);
    h_publish(alice, "/queue/alice.x", "mine", true);
    h_expect_msg(alice, "mine");
    /* `**` crosses segments. */
    h_subscribe(alice, "/queue/alice.x/deep/er", "deep", NULL, NULL);
    h_publish(alice, "/queue/alice.x/deep/er", "deep", true);
    h_expect_msg(alice, "deep");
    /* Each user has its own queues only: alice cannot send to bob's. */
    send_refused(login_ok(b, "alice", PW("alice")), "/queue/bob.inbox", "", "/queue/bob.inbox");
    /* {login} is the login exactly: not a prefix of another name, and the
     * dot is part of the pattern. */
    sub_refused(login_ok(b, "alice", PW("alice")), "/queue/alicex.y");
    sub_refused(login_ok(b, "alice", PW("alice")), "/queue/alice");
    /* Topics are not covered by the {login} rule. */
    sub_refused(login_ok(b, "alice", PW("alice")), "/topic/alice.x");

    /* bob may not read alice's queue. */
    struct h_conn *bob = login_ok(b, "bob", PW("bob"));
    sub_refused(bob, "/queue/alice.x");
    cr_assert(h_broker_alive(b));

    /* Everyone else keeps working. */
    h_publish(alice, "/queue/alice.x", "again", true);
    h_expect_msg(alice, "again");
    h_publish(by, "/queue/bob.inbox", "to myself", true);
    h_expect_msg(by, "to myself");
    h_bystander_ok(b);
    h_disconnect(alice);
    h_disconnect(by);
    h_broker_stop_ok(b);
}

Test(access, acl_star_within_a_segment_and_double_star_across)
{
    struct h_broker *b = acl_broker();
    struct h_conn *carol = login_ok(b, "carol", PW("carol"));
    /* `/topic/news/` + `*`: one segment. */
    h_subscribe(carol, "/topic/news/sport", "n1", NULL, NULL);
    h_subscribe(carol, "/topic/news/weather-today", "n2", NULL, NULL);
    /* `/topic/feed/` + `**`: any depth. */
    h_subscribe(carol, "/topic/feed/a", "f1", NULL, NULL);
    h_subscribe(carol, "/topic/feed/a/b/c", "f2", NULL, NULL);
    /* `*` stops at '/', and the literal parts must match whole. */
    sub_refused(login_ok(b, "carol", PW("carol")), "/topic/news/sport/football");
    sub_refused(login_ok(b, "carol", PW("carol")), "/topic/newsx/sport");
    sub_refused(login_ok(b, "carol", PW("carol")), "/topic/feedx");
    /* read is not write. */
    send_refused(login_ok(b, "carol", PW("carol")), "/topic/news/sport", "", "/topic/news/sport");
    /* Other logins have no news rule. */
    sub_refused(login_ok(b, "dave", PW("dave")), "/topic/news/sport");
    /* carol's subscriptions are still live: nothing arrived, nothing broke. */
    h_expect_silence(carol, 200);
    h_disconnect(carol);
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

Test(access, acl_read_only_user)
{
    struct h_broker *b = acl_broker();
    struct h_conn *dave = login_ok(b, "dave", PW("dave"));
    h_subscribe(dave, "/topic/ro/news", "ro", NULL, NULL);
    /* alice has readwrite there: dave reads what she writes. */
    struct h_conn *alice = login_ok(b, "alice", PW("alice"));
    h_publish(alice, "/topic/ro/news", "read me", true);
    h_expect_msg(dave, "read me");
    /* dave's SEND: ERROR, and his connection closes. */
    struct h_conn *dave2 = login_ok(b, "dave", PW("dave"));
    send_refused(dave2, "/topic/ro/news", "", "/topic/ro/news");
    /* Nothing of dave's went out; the bystanders still work. */
    h_publish(alice, "/topic/ro/news", "after", true);
    h_expect_msg(dave, "after");
    h_disconnect(dave);
    h_disconnect(alice);
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

Test(access, acl_reply_to_needs_write)
{
    struct h_broker *b = acl_broker();
    /* The bystander reads alice's request queue throughout. */
    struct h_conn *by = login_ok(b, "alice", PW("alice"));
    h_subscribe(by, "/queue/alice.requests", "r", NULL, NULL);

    /* reply-to bob's queue: alice may not write there. */
    send_refused(login_ok(b, "alice", PW("alice")), "/queue/alice.requests",
                 "reply-to:/queue/bob.replies\n", "/queue/bob.replies");
    /* reply-to a topic nobody may write. */
    send_refused(login_ok(b, "alice", PW("alice")), "/queue/alice.requests",
                 "reply-to:/topic/news/sport\n", "/topic/news/sport");
    /* reply-to her own queue: delivered, with the header. */
    struct h_conn *alice = login_ok(b, "alice", PW("alice"));
    const char *rid = h_rid(alice);
    h_sendf(alice,
            "SEND\ndestination:/queue/alice.requests\nreply-to:/queue/alice.replies\n"
            "receipt:%s\n\nrequest",
            rid);
    h_expect_receipt(alice, rid);
    struct h_frame *m = h_expect_msg(by, "request"); /* the first: no refused one leaked */
    cr_assert_str_eq(h_hdr(m, "reply-to"), "/queue/alice.replies");
    h_expect_silence(by, 200);
    h_disconnect(alice);
    h_disconnect(by);
    h_bystander_ok(b);
    h_broker_stop_ok(b);
}

/* ===================================================================== */
/* 5. --anonymous-user                                                     */
/* ===================================================================== */

Test(access, anonymous_user)
{
    const char *users = users_file(ARGS("guest", "Guest-Pass-3c3c", "alice", PW("alice")));
    const char *acl = write_file("acl", "guest read /topic/public.**\n"
                                        "alice readwrite /topic/public.**\n"
                                        "alice readwrite /queue/{login}.**\n");
    struct h_broker *b =
        H_START("--users-file", users, "--acl-file", acl, "--anonymous-user", "guest");
    /* No login, no passcode: the guest. */
    struct h_conn *anon = h_dial(b);
    struct h_frame *f = h_stomp_connect(anon, "1.2", NULL, NULL, NULL, false);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0, "anonymous CONNECT got %s", h_show(f));
    h_subscribe(anon, "/topic/public.x", "p", NULL, NULL);
    struct h_conn *alice = login_ok(b, "alice", PW("alice"));
    h_publish(alice, "/topic/public.x", "for everyone", true);
    h_expect_msg(anon, "for everyone");

    /* The guest reads but does not write, and reads nothing else. */
    struct h_conn *anon2 = h_dial(b);
    f = h_stomp_connect(anon2, "1.2", NULL, NULL, NULL, false);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0, "anonymous CONNECT got %s", h_show(f));
    send_refused(anon2, "/topic/public.x", "", "/topic/public.x");
    struct h_conn *anon3 = h_dial(b);
    f = h_stomp_connect(anon3, "1.2", NULL, NULL, NULL, false);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0, "anonymous CONNECT got %s", h_show(f));
    sub_refused(anon3, "/queue/alice.x");

    /* A login without passcode is not anonymous: refused. The guest's own
     * passcode still works. */
    h_set_source("127.0.16.20");
    expect_refused(h_dial(b), "guest", NULL);
    h_set_source(NULL);
    h_disconnect(login_ok(b, "guest", "Guest-Pass-3c3c"));

    h_publish(alice, "/topic/public.x", "still", true);
    h_expect_msg(anon, "still");
    h_disconnect(anon);
    h_disconnect(alice);
    h_broker_stop_ok(b);
}

/* ===================================================================== */
/* 6. --tls-cert-login                                                    */
/* ===================================================================== */

/* A client pair CN=cn signed by the harness's CA 1, in the certificate
 * directory under a per-process name; its base name for h_tls_path. */
static const char *client_cert(const char *cn)
{
    const char *base = h_fmt("acc-%s-%d", cn, (int)getpid());
    char *out = NULL;
    int rc = h_sh(h_fmt("set -e; cd '%s'; "
                        "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
                        "-out %s.key; "
                        "openssl req -new -key %s.key -out %s.csr -subj '/CN=%s'; "
                        "printf 'basicConstraints=CA:FALSE\\n' > %s.ext; "
                        "openssl x509 -req -in %s.csr -CA ca1.crt -CAkey ca1.key "
                        "-set_serial %d%d -days 2 -extfile %s.ext -out %s.crt",
                        h_tls_path(""), base, base, base, cn, base, base, (int)getpid(),
                        (int)(h_now_ms() % 100000), base, base),
                  20000, &out);
    cr_assert(rc == 0, "openssl for CN=%s: %d\n%s", cn, rc, out);
    for (size_t i = 0; i < 4; i++) {
        const char *ext[] = {"key", "csr", "ext", "crt"};
        cr_assert(ntmp < sizeof tmp_files / sizeof tmp_files[0]);
        tmp_files[ntmp++] = strdup(h_tls_path(h_fmt("%s.%s", base, ext[i])));
    }
    return base;
}

static struct h_conn *tls_dial_as(int port, const char *base)
{
    struct h_tls_opts o = {0};
    if (base) {
        o.cert = h_tls_path(h_fmt("%s.crt", base));
        o.key = h_tls_path(h_fmt("%s.key", base));
    }
    struct h_tls_result res;
    struct h_conn *c = h_tls_dial(port, &o, &res);
    cr_assert(c != NULL, "TLS handshake as %s failed: %s", base ? base : "(no certificate)",
              res.err);
    return c;
}

Test(access, tls_cert_login)
{
    const char *alice = client_cert("alice");
    const char *mallory = client_cert("mallory");
    const char *users = users_file(ARGS("alice", PW("alice"), "bob", PW("bob")));
    struct h_broker *b = h_tls_broker("stomp+ssl://127.0.0.1:0", "srv_ec", 1,
                                      ARGS("--tls-ca", h_tls_path("ca1.crt"), "--tls-verify-client",
                                           "optional", "--tls-cert-login", "--users-file", users));
    int port = h_broker_port_of(b, "stomp+ssl://");

    /* CN=alice, no login, no passcode: alice. */
    struct h_conn *c = tls_dial_as(port, alice);
    struct h_frame *f = h_stomp_connect(c, "1.2", NULL, NULL, NULL, false);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0, "CN=alice got %s", h_show(f));
    const char *q = h_dest("queue", "cert");
    h_subscribe(c, q, "s", NULL, NULL);
    h_publish(c, q, "by certificate", true);
    h_expect_msg(c, "by certificate");
    h_disconnect(c);
    /* The same with login:alice (the CN) and no passcode. */
    c = tls_dial_as(port, alice);
    f = h_stomp_connect(c, "1.2", "alice", NULL, NULL, false);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0, "CN=alice login:alice got %s", h_show(f));
    h_disconnect(c);

    /* CN=mallory is no user. */
    expect_refused(tls_dial_as(port, mallory), NULL, NULL);
    cr_assert(log_has(b, "login failed for 'mallory' (certificate CN: no such user)", 3000), "%s",
              h_broker_log(b));
    /* No certificate, no passcode. */
    expect_refused(tls_dial_as(port, NULL), NULL, NULL);
    /* A certificate and another login without passcode. */
    expect_refused(tls_dial_as(port, alice), "bob", NULL);
    cr_assert(log_has(b, "(the login header is not the certificate's CN)", 3000), "%s",
              h_broker_log(b));

    /* Login and passcode still work over TLS, whatever the certificate. */
    c = tls_dial_as(port, alice);
    f = h_stomp_connect(c, "1.2", "bob", PW("bob"), NULL, false);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0, "bob's passcode got %s", h_show(f));
    h_disconnect(c);
    h_broker_stop_ok(b);
}

/* ===================================================================== */
/* 7. Without users: loopback only                                        */
/* ===================================================================== */

/*
 * Every client here is on loopback, so only the log line and a loopback
 * CONNECT are checked. The refusal of a remote client without users is
 * covered by the unit test tests/unit/test_broker_auth.c
 * (no_users_loopback_only) and by the Docker image test
 * (tests/docker/test_docker.sh), where the client is on another address.
 */
Test(access, no_users_loopback_only)
{
    struct h_broker *b = H_START0();
    cr_assert(log_has(b,
                      "authentication is off: no users configured, so only loopback clients "
                      "may connect (with any login); see --users-file",
                      3000),
              "no 'authentication is off' line:\n%s", h_broker_log(b));
    /* Any login from loopback, from any loopback address. */
    h_disconnect(h_client_login(b, "1.2", "anyone", "anything"));
    h_set_source("127.0.16.30");
    struct h_conn *c = h_dial(b);
    struct h_frame *f = h_stomp_connect(c, "1.2", NULL, NULL, NULL, false);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0, "CONNECT without login got %s", h_show(f));
    h_disconnect(c);
    h_set_source(NULL);
    h_broker_stop_ok(b);

    /* --allow-remote-unauthenticated says so with a warning. */
    b = H_START("--allow-remote-unauthenticated");
    cr_assert(log_has(b,
                      "authentication is off: no users configured and "
                      "--allow-remote-unauthenticated: any client may connect with any login",
                      3000),
              "no warning:\n%s", h_broker_log(b));
    h_disconnect(h_client(b, "1.2"));
    h_broker_stop_ok(b);
}
