/*
 * fuzz_journal.c - libFuzzer target for the journal's file format (issue
 * 12): whatever bytes a segment file holds (a torn write, a damaged disk, a
 * hostile file in the data dir), decoding and replay never read out of
 * bounds, never crash, and only ever report records that re-encode to the
 * very bytes they were decoded from.
 *
 * Each input is checked twice: decoded at every offset in memory (fast),
 * then written as the one segment of a journal directory and replayed from
 * the file (the path a broker takes at start, including cutting a torn
 * tail).
 */
#include "store/journal.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static void check_round_trip(const uint8_t *p, size_t used, const struct stp_jrec *r)
{
    size_t size = stp_jrec_size(r);
    if (size != used)
        abort();
    uint8_t *copy = malloc(size);
    if (!copy)
        return;
    stp_jrec_encode(r, copy);
    if (memcmp(copy, p, size) != 0)
        abort();
    free(copy);
}

static int on_record(void *ctx, const struct stp_jrec *r)
{
    (void)ctx;
    /* Touch every byte the record points at (ASan checks the bounds). */
    volatile unsigned sum = 0;
    bool named = r->type == STP_JREC_MSG || r->type == STP_JREC_DEDUP;
    for (uint32_t i = 0; named && i < r->queue_len; i++)
        sum += (unsigned char)r->queue[i];
    for (uint32_t i = 0; r->type == STP_JREC_MSG && i < r->tail_len; i++)
        sum += (unsigned char)r->tail[i];
    for (uint32_t i = 0; r->type == STP_JREC_DEDUP && i < r->id_len; i++)
        sum += (unsigned char)r->id[i];
    (void)sum;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (size_t off = 0; off < size; off++) {
        struct stp_jrec r;
        size_t used = 0;
        if (stp_jrec_decode(data + off, size - off, &r, &used) == STP_JDEC_OK) {
            if (used < STP_JREC_HEADER || used > size - off)
                abort();
            check_round_trip(data + off, used, &r);
        }
    }
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "/tmp/fuzz-journal-XXXXXX");
        if (!mkdtemp(dir))
            abort();
    }
    char path[128];
    snprintf(path, sizeof(path), "%s/0000000000000001.seg", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        abort();
    if (size && write(fd, data, size) != (ssize_t)size)
        abort();
    close(fd);
    struct stp_journal_replay_stats st;
    (void)stp_journal_replay(dir, on_record, NULL, &st);
    if (st.bytes > size)
        abort();
    unlink(path);
    return 0;
}
