/*
 * 17_metrics_auth.c - GET /metrics behind --metrics-auth (issue 11) against a
 * real broker: 401 with a Basic challenge without credentials, 200 with the
 * right ones (users file: argon2id checked off the loop; --user: plain), 401
 * for a wrong password or another user, failures counted in
 * stampede_failed_logins_total and logged without the password, 429 with
 * Retry-After once an address failed five times, /healthz still open.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(metrics_auth, .init = h_init, .fini = h_fini, .timeout = 60);

static char users_path[64];

/* A users file with mon:pw-of-mon and app:pw-of-app, hashed by the broker's
 * own `stampede hash-password`. */
static const char *users_file(void)
{
    snprintf(users_path, sizeof(users_path), "/tmp/stampede-ma-XXXXXX");
    int fd = mkstemp(users_path);
    cr_assert_geq(fd, 0);
    const char *users[][2] = {{"mon", "pw-of-mon"}, {"app", "pw-of-app"}};
    for (size_t i = 0; i < 2; i++) {
        char cmd[512], hash[256] = "";
        snprintf(cmd, sizeof(cmd), "printf '%%s\\n' '%s' | '%s' hash-password", users[i][1],
                 h_bin());
        FILE *p = popen(cmd, "r");
        cr_assert_not_null(p);
        cr_assert_not_null(fgets(hash, sizeof(hash), p));
        cr_assert_eq(pclose(p), 0, "hash-password failed");
        cr_assert(strncmp(hash, "$argon2id$", 10) == 0, "not an argon2id hash: %s", hash);
        dprintf(fd, "%s:%s", users[i][0], hash);
    }
    close(fd);
    return users_path;
}

/* base64 of "login:password" (short inputs). */
static const char *basic(const char *login, const char *password)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char in[128];
    snprintf(in, sizeof(in), "%s:%s", login, password);
    size_t n = strlen(in), k = 0;
    static char out[256];
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned char)in[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)in[i + 2];
        out[k++] = tbl[v >> 18 & 63];
        out[k++] = tbl[v >> 12 & 63];
        out[k++] = i + 1 < n ? tbl[v >> 6 & 63] : '=';
        out[k++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    out[k] = '\0';
    return out;
}

/* GET path with an optional Authorization value; the whole answer. */
static const char *get(int port, const char *path, const char *authorization, int *status)
{
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: test\r\n%s%s%sConnection: close\r\n\r\n", path,
                     authorization ? "Authorization: " : "", authorization ? authorization : "",
                     authorization ? "\r\n" : "");
    bool closed;
    const char *resp = h_http_exchange(port, req, (size_t)n, 5000, status, &closed);
    cr_assert(closed, "the answer to GET %s did not end", path);
    return resp;
}

static const char *authed(const char *login, const char *password)
{
    return h_fmt("Basic %s", basic(login, password));
}

static long failed_logins(int port)
{
    int status;
    const char *resp = get(port, "/metrics", authed("mon", "pw-of-mon"), &status);
    cr_assert_eq(status, 200, "authenticated /metrics: %s", resp);
    const char *line = strstr(resp, "\nstampede_failed_logins_total ");
    cr_assert_not_null(line);
    return strtol(line + strlen("\nstampede_failed_logins_total "), NULL, 10);
}

Test(metrics_auth, users_file)
{
    struct h_broker *b = H_START_WS(2, "--users-file", users_file(), "--metrics-auth", "mon");
    int ws = h_listener_port(b, "ws"), status;
    const char *resp = get(ws, "/metrics", NULL, &status);
    cr_assert_eq(status, 401, "no credentials: %s", resp);
    const char *challenge = h_http_header(resp, "WWW-Authenticate");
    cr_assert(challenge && strncmp(challenge, "Basic realm=", 12) == 0, "challenge: %s", resp);
    cr_assert_null(strstr(resp, "stampede_"), "a 401 leaked metrics");
    cr_assert_eq(failed_logins(ws), 0, "asking without credentials is not a failed login");
    h_set_source("127.0.4.1");
    resp = get(ws, "/metrics", authed("mon", "wrong"), &status);
    cr_assert_eq(status, 401, "wrong password: %s", resp);
    resp = get(ws, "/metrics", authed("app", "pw-of-app"), &status);
    cr_assert_eq(status, 401, "another user (with its right password): %s", resp);
    resp = get(ws, "/metrics", "Bearer abc", &status);
    cr_assert_eq(status, 401, "another scheme: %s", resp);
    h_set_source(NULL);
    cr_assert_eq(failed_logins(ws), 2);
    resp = get(ws, "/healthz", NULL, &status);
    cr_assert_eq(status, 200, "/healthz stays open: %s", resp);
    const char *log = h_broker_log(b);
    cr_assert_not_null(strstr(log, "/metrics login failed for 'mon'"), "log:\n%s", log);
    cr_assert_null(strstr(log, "wrong"), "the log shows a password:\n%s", log);
    h_broker_stop_ok(b);
    unlink(users_path);
}

Test(metrics_auth, plain_user_and_backoff)
{
    struct h_broker *b = H_START_WS(1, "--user", "mon:pw-of-mon", "--metrics-auth", "mon");
    int ws = h_listener_port(b, "ws"), status;
    cr_assert_eq(failed_logins(ws), 0);
    h_set_source("127.0.4.2");
    for (int i = 0; i < 5; i++) {
        const char *resp = get(ws, "/metrics", authed("mon", h_fmt("guess%d", i)), &status);
        cr_assert_eq(status, 401, "guess %d: %s", i, resp);
    }
    /* Now this address is slowed down: no check at all, even of the right
     * password, until the delay is over. */
    const char *resp = get(ws, "/metrics", authed("mon", "pw-of-mon"), &status);
    cr_assert_eq(status, 429, "after 5 failures: %s", resp);
    const char *retry = h_http_header(resp, "Retry-After");
    cr_assert(retry && atoi(retry) >= 1, "Retry-After: %s", resp);
    /* Another address is not slowed down. Addresses share backoff counters
     * by a seeded hash into 4,096 stripes, so one other address collides
     * with the guessing one once in 4,096 runs: three independent ones all
     * colliding would be once in ~7e10. */
    int answered = 0;
    for (int i = 3; i <= 5 && !answered; i++) {
        h_set_source(h_fmt("127.0.4.%d", i));
        resp = get(ws, "/metrics", authed("mon", "pw-of-mon"), &status);
        if (status == 200) {
            answered = i;
            const char *line = strstr(resp, "\nstampede_failed_logins_total ");
            cr_assert(line && strtol(line + 30, NULL, 10) == 5, "%s", resp);
        }
    }
    h_set_source(NULL);
    cr_assert(answered, "every other address was slowed down too: %s", resp);
    h_broker_stop_ok(b);
}

Test(metrics_auth, open_without_the_flag)
{
    struct h_broker *b = H_START_WS0();
    int status;
    const char *resp = get(h_listener_port(b, "ws"), "/metrics", NULL, &status);
    cr_assert_eq(status, 200, "%s", resp);
    h_broker_stop_ok(b);
}
