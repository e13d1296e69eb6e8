/*
 * record.c - the journal record's encoding (layout in journal.h, offsets in
 * store_internal.h).
 *
 * The decoder's contract: it reads only buf[0, len) and answers OK (a whole
 * record whose checksum matches), SHORT (the bytes present could still be
 * the start of a record: every field they hold passes its check) or BAD.
 * Fields are checked in file order as far as they are present, so a torn
 * record reads SHORT and garbage reads BAD as early as possible; replay
 * relies on both, and on BAD never skipping a byte that might start a
 * record (it returns no length).
 */
#include "store_internal.h"

#include <string.h>

static bool type_known(uint8_t t)
{
    return t >= STP_JREC_MSG && t <= STP_JREC_DEDUP;
}

size_t stp_jrec_size(const struct stp_jrec *r)
{
    if (!type_known(r->type))
        return 0;
    if (r->type != STP_JREC_MSG && r->type != STP_JREC_DEDUP)
        return STP_JREC_HEADER;
    if (r->queue_len == 0 || r->queue_len > UINT16_MAX)
        return 0;
    if (r->type == STP_JREC_DEDUP) {
        if (r->id_len == 0 || r->id_len > STP_JREC_DEDUP_MAX_ID)
            return 0;
        return STP_JREC_HEADER + STP_JREC_DEDUP_FIXED + r->queue_len + r->id_len;
    }
    uint64_t payload = (uint64_t)STP_JREC_MSG_FIXED + r->queue_len + r->tail_len;
    if (payload > STP_JREC_MAX_PAYLOAD)
        return 0;
    return STP_JREC_HEADER + (size_t)payload;
}

static void encode_msg(const struct stp_jrec *r, uint8_t *out)
{
    stp_wr64(out + STP_JOFF_EXPIRES, r->expires_ms);
    stp_wr32(out + STP_JOFF_DELIVERIES, r->deliveries);
    stp_wr32(out + STP_JOFF_BODY_LEN, r->body_len);
    stp_wr16(out + STP_JOFF_QUEUE_LEN, (uint16_t)r->queue_len);
    stp_wr16(out + STP_JOFF_QUEUE_RSV, 0);
    stp_wr32(out + STP_JOFF_TAIL_LEN, r->tail_len);
    memcpy(out + STP_JOFF_QUEUE, r->queue, r->queue_len);
    if (r->tail_len > 0)
        memcpy(out + STP_JOFF_QUEUE + r->queue_len, r->tail, r->tail_len);
}

static void encode_dedup(const struct stp_jrec *r, uint8_t *out)
{
    stp_wr64(out + STP_JOFF_SEEN, r->seen_ms);
    stp_wr16(out + STP_JOFF_DQUEUE_LEN, (uint16_t)r->queue_len);
    stp_wr16(out + STP_JOFF_DID_LEN, (uint16_t)r->id_len);
    stp_wr32(out + STP_JOFF_DRSV, 0);
    memcpy(out + STP_JOFF_DQUEUE, r->queue, r->queue_len);
    memcpy(out + STP_JOFF_DQUEUE + r->queue_len, r->id, r->id_len);
}

void stp_jrec_encode(const struct stp_jrec *r, uint8_t *out)
{
    size_t size = stp_jrec_size(r);
    memcpy(out, STP_JREC_MAGIC, STP_JREC_MAGIC_LEN);
    stp_wr32(out + STP_JOFF_LEN, (uint32_t)(size - STP_JREC_HEADER));
    out[STP_JOFF_TYPE] = r->type;
    out[STP_JOFF_FLAGS] = r->flags;
    stp_wr16(out + STP_JOFF_RSV, 0);
    stp_wr64(out + STP_JOFF_LSN, r->lsn);
    stp_wr64(out + STP_JOFF_KEY, r->key);
    if (r->type == STP_JREC_MSG)
        encode_msg(r, out);
    else if (r->type == STP_JREC_DEDUP)
        encode_dedup(r, out);
    stp_wr32(out + STP_JOFF_CRC, stp_crc32c(0, out + STP_JOFF_LEN, size - STP_JOFF_LEN));
}

/* The header fields present in b[0, len) (magic already matched) break a
 * rule: payload length, type, the type's payload, the reserved bytes. */
static bool header_bad(const uint8_t *b, size_t len)
{
    uint32_t plen = len >= STP_JOFF_TYPE ? stp_rd32(b + STP_JOFF_LEN) : 0;
    if (len >= STP_JOFF_TYPE && plen > STP_JREC_MAX_PAYLOAD)
        return true;
    if (len > STP_JOFF_TYPE) {
        uint8_t t = b[STP_JOFF_TYPE];
        if (!type_known(t))
            return true;
        if (t != STP_JREC_MSG && t != STP_JREC_DEDUP && plen != 0)
            return true;
        if (t == STP_JREC_MSG && plen < STP_JREC_MSG_FIXED + 1)
            return true;
        if (t == STP_JREC_DEDUP &&
            (plen < STP_JREC_DEDUP_FIXED + 2 ||
             plen > STP_JREC_DEDUP_FIXED + UINT16_MAX + STP_JREC_DEDUP_MAX_ID))
            return true;
    }
    return len >= STP_JOFF_LSN && stp_rd16(b + STP_JOFF_RSV) != 0;
}

/* The MSG layout fields present in b[0, len) (a whole header) break a
 * rule: a queue, the reserved bytes, the lengths adding up. */
static bool msg_layout_bad(const uint8_t *b, size_t len)
{
    uint32_t qlen = len >= STP_JOFF_QUEUE_RSV ? stp_rd16(b + STP_JOFF_QUEUE_LEN) : 1;
    if (qlen == 0)
        return true;
    if (len >= STP_JOFF_TAIL_LEN && stp_rd16(b + STP_JOFF_QUEUE_RSV) != 0)
        return true;
    if (len < STP_JOFF_QUEUE)
        return false;
    uint64_t want = (uint64_t)STP_JREC_MSG_FIXED + qlen + stp_rd32(b + STP_JOFF_TAIL_LEN);
    return want != stp_rd32(b + STP_JOFF_LEN);
}

/* The DEDUP layout fields present in b[0, len) (a whole header) break a
 * rule: a queue, an id within bounds, the reserved bytes, the lengths
 * adding up. */
static bool dedup_layout_bad(const uint8_t *b, size_t len)
{
    if (len >= STP_JOFF_DID_LEN && stp_rd16(b + STP_JOFF_DQUEUE_LEN) == 0)
        return true;
    if (len < STP_JOFF_DRSV)
        return false;
    uint32_t ilen = stp_rd16(b + STP_JOFF_DID_LEN);
    if (ilen == 0 || ilen > STP_JREC_DEDUP_MAX_ID)
        return true;
    if (len < STP_JOFF_DQUEUE)
        return false;
    if (stp_rd32(b + STP_JOFF_DRSV) != 0)
        return true;
    uint64_t want = (uint64_t)STP_JREC_DEDUP_FIXED + stp_rd16(b + STP_JOFF_DQUEUE_LEN) + ilen;
    return want != stp_rd32(b + STP_JOFF_LEN);
}

static void fill_dedup(const uint8_t *b, struct stp_jrec *r)
{
    r->seen_ms = stp_rd64(b + STP_JOFF_SEEN);
    r->queue_len = stp_rd16(b + STP_JOFF_DQUEUE_LEN);
    r->id_len = stp_rd16(b + STP_JOFF_DID_LEN);
    r->queue = (const char *)b + STP_JOFF_DQUEUE;
    r->id = r->queue + r->queue_len;
}

static void fill(const uint8_t *b, struct stp_jrec *r)
{
    memset(r, 0, sizeof(*r));
    r->type = b[STP_JOFF_TYPE];
    r->flags = b[STP_JOFF_FLAGS];
    r->lsn = stp_rd64(b + STP_JOFF_LSN);
    r->key = stp_rd64(b + STP_JOFF_KEY);
    if (r->type == STP_JREC_DEDUP)
        fill_dedup(b, r);
    if (r->type != STP_JREC_MSG)
        return;
    r->expires_ms = stp_rd64(b + STP_JOFF_EXPIRES);
    r->deliveries = stp_rd32(b + STP_JOFF_DELIVERIES);
    r->body_len = stp_rd32(b + STP_JOFF_BODY_LEN);
    r->queue_len = stp_rd16(b + STP_JOFF_QUEUE_LEN);
    r->tail_len = stp_rd32(b + STP_JOFF_TAIL_LEN);
    r->queue = (const char *)b + STP_JOFF_QUEUE;
    r->tail = r->queue + r->queue_len;
}

enum stp_jdec stp_jrec_decode(const uint8_t *buf, size_t len, struct stp_jrec *r, size_t *used)
{
    if (len < STP_JREC_MAGIC_LEN)
        return len == 0 || memcmp(buf, STP_JREC_MAGIC, len) == 0 ? STP_JDEC_SHORT : STP_JDEC_BAD;
    if (memcmp(buf, STP_JREC_MAGIC, STP_JREC_MAGIC_LEN) != 0 || header_bad(buf, len))
        return STP_JDEC_BAD;
    if (len < STP_JREC_HEADER)
        return STP_JDEC_SHORT;
    if (buf[STP_JOFF_TYPE] == STP_JREC_MSG && msg_layout_bad(buf, len))
        return STP_JDEC_BAD;
    if (buf[STP_JOFF_TYPE] == STP_JREC_DEDUP && dedup_layout_bad(buf, len))
        return STP_JDEC_BAD;
    size_t total = STP_JREC_HEADER + (size_t)stp_rd32(buf + STP_JOFF_LEN);
    if (len < total)
        return STP_JDEC_SHORT;
    uint32_t crc = stp_crc32c(0, buf + STP_JOFF_LEN, total - STP_JOFF_LEN);
    if (crc != stp_rd32(buf + STP_JOFF_CRC))
        return STP_JDEC_BAD;
    fill(buf, r);
    *used = total;
    return STP_JDEC_OK;
}
