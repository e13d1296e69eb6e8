/*
 * fuzz_cluster.c - what a node accepts from NATS (issue 14): the subject
 * and payload of one arrival through stp_cluster_in_check, and for what it
 * accepts, the message built as cluster_in.c builds it (a queue's subject,
 * stp.q.*, through the checks of a message JetStream leased,
 * cluster_in_js.c). Properties: never crashes or leaks; an accepted
 * message is a topic, temp queue or queue message (as its subject says) whose MESSAGE
 * frame (a delivery header block + its tail) parses back as exactly one
 * whole frame to the same destination, so nothing from NATS can smuggle a
 * second frame into a subscriber's stream.
 *
 * Input: the subject up to the first '\n' (at most 255 bytes), then the
 * payload.
 */
#include "broker/cluster_int.h"
#include "broker/session_int.h"
#include "cluster/wire.h"
#include "stampede/config.h"
#include "stampede/msg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct stp_cluster_in in;
static struct stp_parser check_parser;
static struct stp_buf frame;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static struct stp_config cfg;
    char *args[] = {"stampede", "--max-frame-size", "64KiB", "--max-headers", "64", NULL};
    char *env[] = {NULL};
    if (stp_config_parse(&cfg, 5, args, env) != STP_CONFIG_RUN ||
        stp_cluster_in_init(&in, &cfg) < 0)
        abort();
    struct stp_limits lim = {.max_frame = 1 << 20, .max_headers = 1000, .max_header_len = 1 << 20};
    if (stp_parser_init(&check_parser, &lim) < 0)
        abort();
    check_parser.version = STP_V12;
    return 0;
}

static void check_delivery(const struct stp_msg *m)
{
    stp_buf_reset(&frame);
    stp_buf_append_str(&frame, "MESSAGE\nsubscription:1\n");
    stp_buf_append(&frame, m->id_line, m->id_line_len);
    stp_buf_append(&frame, m->tail, m->tail_len);
    stp_parser_reset(&check_parser);
    check_parser.version = STP_V12;
    struct stp_frame f;
    ssize_t n = stp_parse(&check_parser, (char *)frame.data, frame.len, &f);
    if (n != (ssize_t)frame.len || f.cmd != STP_CMD_MESSAGE)
        abort(); /* a delivery that is not exactly one MESSAGE frame */
    const struct stp_slice *d = stp_frame_header(&f, "destination");
    if (!d || d->len != m->dest_len || memcmp(d->p, m->dest, m->dest_len) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size < 256 ? size : 256);
    if (!nl)
        return 0;
    char subject[256];
    size_t slen = (size_t)(nl - data);
    memcpy(subject, data, slen);
    subject[slen] = '\0';
    if (strlen(subject) != slen)
        return 0; /* NATS subjects hold no NUL */
    struct stp_wire_msg wm;
    struct stp_frame f;
    const char *why;
    /* A queue's subject goes the way of a message JetStream leased. */
    bool queue = strncmp(subject, "stp.q.", 6) == 0;
    const char *dest =
        queue ? stp_cluster_in_check_leased(&in, subject, nl + 1, size - slen - 1, &wm, &f, &why)
              : stp_cluster_in_check(&in, subject, nl + 1, size - slen - 1, &wm, &f, &why);
    if (!dest)
        return 0;
    struct stp_msg *m = stp_msg_from_send(&in.scratch, &f, 3);
    if (!m)
        return 0;
    const char *kind = queue ? "/queue/" : m->dest[1] == 'r' ? "/reply-queue/" : "/topic/";
    if (strcmp(m->dest, dest) != 0 || strncmp(m->dest, kind, strlen(kind)) != 0)
        abort();
    check_delivery(m);
    stp_msg_unref(&m);
    return 0;
}
