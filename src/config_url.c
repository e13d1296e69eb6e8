/*
 * config_url.c - listen URLs: stomp://HOST:PORT, stomp+ssl://HOST:PORT,
 * ws://HOST:PORT/PATH and wss://HOST:PORT/PATH (see config.h).
 *
 * Pure functions over caller memory; used by the configuration on the main
 * thread and by the broker to log each listener's bound address.
 */
#include "stampede/config.h"
#include "stampede/error.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct scheme_info {
    const char *prefix;
    enum stp_scheme scheme;
    uint16_t port; /* when the URL names none */
    bool has_path;
} schemes[] = {
    {"stomp://", STP_SCHEME_STOMP, 61613, false},
    {"stomp+ssl://", STP_SCHEME_STOMP_SSL, 61614, false},
    {"ws://", STP_SCHEME_WS, 15674, true},
    {"wss://", STP_SCHEME_WSS, 15673, true},
};

static const struct scheme_info *scheme_of(enum stp_scheme s)
{
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (schemes[i].scheme == s)
            return &schemes[i];
    assert(!"unknown scheme");
    return &schemes[0];
}

/* HOST up to ':' or '/' (or "[v6]"); advances *p. NULL or the reason. */
static const char *url_host(const char **p, struct stp_listen_url *out)
{
    const char *s = *p, *end;
    if (*s == '[') {
        end = strchr(s, ']');
        if (!end || (size_t)(end - s - 1) >= sizeof(out->host))
            return "bad IPv6 address";
        memcpy(out->host, s + 1, (size_t)(end - s - 1));
        out->host[end - s - 1] = '\0';
        unsigned char addr[16];
        if (inet_pton(AF_INET6, out->host, addr) != 1)
            return "bad IPv6 address";
        *p = end + 1;
        return NULL;
    }
    size_t len = strcspn(s, ":/");
    if (len == 0)
        return "no host";
    if (len >= sizeof(out->host))
        return "host name too long";
    bool numeric = true;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_';
        if (!ok)
            return "bad host";
        numeric = numeric && ((c >= '0' && c <= '9') || c == '.');
    }
    memcpy(out->host, s, len);
    out->host[len] = '\0';
    unsigned char addr[4];
    if (numeric && inet_pton(AF_INET, out->host, addr) != 1)
        return "bad IPv4 address";
    *p = s + len;
    return NULL;
}

/* ":PORT" (optional); advances *p. NULL or the reason. */
static const char *url_port(const char **p, struct stp_listen_url *out)
{
    const char *s = *p;
    if (*s != ':')
        return NULL;
    s++;
    size_t len = strspn(s, "0123456789");
    if (len == 0 || len > 5 || (s[len] != '\0' && s[len] != '/'))
        return "bad port (0-65535)";
    unsigned long v = strtoul(s, NULL, 10);
    if (v > 65535)
        return "bad port (0-65535)";
    out->port = (uint16_t)v;
    *p = s + len;
    return NULL;
}

/* The rest after HOST:PORT. NULL or the reason. */
static const char *url_path(const char *s, const struct scheme_info *si, struct stp_listen_url *out)
{
    if (!si->has_path) {
        if (s[0] != '\0' && strcmp(s, "/") != 0)
            return "stomp:// and stomp+ssl:// URLs take no path";
        return NULL;
    }
    if (s[0] == '\0')
        s = "/ws";
    if (s[0] != '/')
        return "bad path";
    if (strlen(s) >= sizeof(out->path))
        return "path too long";
    for (const char *c = s; *c; c++) {
        if (*c == '?' || *c == '#')
            return "no query or fragment allowed";
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
            return "bad path";
    }
    strcpy(out->path, s);
    return NULL;
}

/* NULL and *out filled, or the reason the text is not a listen URL. */
const char *stp_listen_url_check(const char *text, struct stp_listen_url *out)
{
    const struct scheme_info *si = NULL;
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]) && !si; i++)
        if (strncasecmp(text, schemes[i].prefix, strlen(schemes[i].prefix)) == 0)
            si = &schemes[i];
    if (!si)
        return "unknown scheme (use stomp://, stomp+ssl://, ws:// or wss://)";
    memset(out, 0, sizeof(*out));
    out->scheme = si->scheme;
    out->port = si->port;
    const char *p = text + strlen(si->prefix);
    const char *why = url_host(&p, out);
    if (!why)
        why = url_port(&p, out);
    if (!why && *p != '\0' && *p != '/')
        why = "bad host";
    if (!why)
        why = url_path(p, si, out);
    return why;
}

int stp_listen_url_parse(const char *text, struct stp_listen_url *out)
{
    return stp_listen_url_check(text, out) ? STP_EINVAL : 0;
}

void stp_listen_url_format(const struct stp_listen_url *u, uint16_t port, char *buf, size_t n)
{
    const struct scheme_info *si = scheme_of(u->scheme);
    bool v6 = strchr(u->host, ':') != NULL;
    snprintf(buf, n, "%s%s%s%s:%u%s", si->prefix, v6 ? "[" : "", u->host, v6 ? "]" : "",
             (unsigned)port, si->has_path ? u->path : "");
}
