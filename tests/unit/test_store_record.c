/* Unit tests of src/store/crc32c.c and src/store/record.c (issue 12): the
 * CRC-32C vectors and both implementations against each other, the record
 * encoding's round trip, and a decoder that no flipped bit, cut or bad
 * field gets past (each decode of a cut record runs on a buffer of exactly
 * that many bytes, so the sanitizer build catches any read past len). */
#include "store/store_internal.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static const char QUEUE[] = "/queue/orders";
static const char TAIL[] = "content-type:text/plain\ncorrelation-id:42\n\nhello, journal";

static struct stp_jrec msg_rec(void)
{
    return (struct stp_jrec){
        .type = STP_JREC_MSG,
        .flags = STP_JMSG_NEEDS_ESCAPE,
        .lsn = 0x0102030405060708ull,
        .key = 0x0102030405060000ull,
        .expires_ms = 1767225600123ull,
        .deliveries = 3,
        .body_len = 14,
        .queue = QUEUE,
        .queue_len = sizeof(QUEUE) - 1,
        .tail = TAIL,
        .tail_len = sizeof(TAIL) - 1,
    };
}

/* r encoded in a fresh allocation of *size bytes. */
static uint8_t *encode(const struct stp_jrec *r, size_t *size)
{
    *size = stp_jrec_size(r);
    cr_assert_gt(*size, 0);
    uint8_t *b = malloc(*size);
    cr_assert_not_null(b);
    stp_jrec_encode(r, b);
    return b;
}

/* Recompute b's checksum after a test changed a field on purpose. */
static void recrc(uint8_t *b, size_t size)
{
    stp_wr32(b + STP_JOFF_CRC, stp_crc32c(0, b + STP_JOFF_LEN, size - STP_JOFF_LEN));
}

static enum stp_jdec decode_copy(const uint8_t *b, size_t len)
{
    uint8_t *c = malloc(len ? len : 1);
    cr_assert_not_null(c);
    memcpy(c, b, len);
    struct stp_jrec r;
    size_t used = 0;
    enum stp_jdec d = stp_jrec_decode(c, len, &r, &used);
    free(c);
    return d;
}

static void assert_same(const struct stp_jrec *a, const struct stp_jrec *b)
{
    cr_assert_eq(a->type, b->type);
    cr_assert_eq(a->flags, b->flags);
    cr_assert_eq(a->lsn, b->lsn);
    cr_assert_eq(a->key, b->key);
    cr_assert_eq(a->expires_ms, b->expires_ms);
    cr_assert_eq(a->deliveries, b->deliveries);
    cr_assert_eq(a->body_len, b->body_len);
    cr_assert_eq(a->queue_len, b->queue_len);
    cr_assert_eq(a->tail_len, b->tail_len);
    if (a->queue_len)
        cr_assert_eq(memcmp(a->queue, b->queue, a->queue_len), 0);
    if (a->tail_len)
        cr_assert_eq(memcmp(a->tail, b->tail, a->tail_len), 0);
}

/* --- CRC-32C --- */

struct vector {
    uint8_t data[32];
    size_t len;
    uint32_t crc;
};

static void check_vector(const void *p, size_t n, uint32_t want)
{
    cr_assert_eq(stp_crc32c(0, p, n), want, "len %zu", n);
    cr_assert_eq(stp_crc32c_sw(0, p, n), want, "sw len %zu", n);
    if (stp_crc32c_hw_available())
        cr_assert_eq(stp_crc32c_hw(0, p, n), want, "hw len %zu", n);
}

Test(crc32c, known_vectors)
{
    check_vector("", 0, 0);
    check_vector("123456789", 9, 0xE3069283u);
    uint8_t b[32];
    memset(b, 0, sizeof(b));
    check_vector(b, 32, 0x8A9136AAu);
    memset(b, 0xff, sizeof(b));
    check_vector(b, 32, 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    check_vector(b, 32, 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(31 - i);
    check_vector(b, 32, 0x113FDB5Cu);
}

Test(crc32c, chaining_equals_one_pass)
{
    const char *s = "The quick brown fox jumps over the lazy dog";
    size_t n = strlen(s);
    uint32_t whole = stp_crc32c(0, s, n);
    for (size_t cut = 0; cut <= n; cut++) {
        cr_assert_eq(stp_crc32c(stp_crc32c(0, s, cut), s + cut, n - cut), whole);
        cr_assert_eq(stp_crc32c_sw(stp_crc32c_sw(0, s, cut), s + cut, n - cut), whole);
    }
}

static uint8_t *random_bytes(size_t n, unsigned seed)
{
    uint8_t *b = malloc(n);
    cr_assert_not_null(b);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (uint8_t)x;
    }
    return b;
}

Test(crc32c, hardware_matches_table_at_every_alignment)
{
    if (!stp_crc32c_hw_available())
        cr_skip("no SSE4.2 on this CPU");
    uint8_t *b = random_bytes(16 + 300, 7);
    for (size_t align = 0; align < 16; align++) {
        for (size_t len = 0; len <= 300; len++) {
            uint32_t sw = stp_crc32c_sw(0, b + align, len);
            cr_assert_eq(stp_crc32c_hw(0, b + align, len), sw, "align %zu len %zu", align, len);
            cr_assert_eq(stp_crc32c_hw(0x12345678u, b + align, len),
                         stp_crc32c_sw(0x12345678u, b + align, len));
        }
    }
    free(b);
    size_t big = (1u << 20) + 13;
    b = random_bytes(big, 11);
    cr_assert_eq(stp_crc32c_hw(0, b + 3, big - 3), stp_crc32c_sw(0, b + 3, big - 3));
    free(b);
}

/* --- encode and decode --- */

Test(record, round_trip_of_each_type)
{
    struct stp_jrec recs[] = {
        msg_rec(),
        {.type = STP_JREC_SETTLE, .lsn = 77, .key = 12},
        {.type = STP_JREC_DELIVER, .lsn = 78, .key = 12, .flags = 0},
        {.type = STP_JREC_NOOP, .lsn = 1ull << 63},
    };
    struct stp_jrec empty_tail = msg_rec();
    empty_tail.tail_len = 0;
    empty_tail.tail = NULL;
    empty_tail.queue_len = 1;
    for (size_t i = 0; i <= sizeof(recs) / sizeof(recs[0]); i++) {
        const struct stp_jrec *in = i < 4 ? &recs[i] : &empty_tail;
        size_t size;
        uint8_t *b = encode(in, &size);
        cr_assert_eq(memcmp(b, "STPJ", 4), 0);
        struct stp_jrec out;
        size_t used = 0;
        cr_assert_eq(stp_jrec_decode(b, size, &out, &used), STP_JDEC_OK, "record %zu", i);
        cr_assert_eq(used, size);
        assert_same(in, &out);
        if (in->type == STP_JREC_MSG) {
            cr_assert_eq((const uint8_t *)out.queue, b + STP_JOFF_QUEUE);
        } else {
            cr_assert_eq(size, STP_JREC_HEADER);
            cr_assert_null(out.queue);
        }
        free(b);
    }
}

Test(record, layout_is_little_endian_as_documented)
{
    struct stp_jrec r = msg_rec();
    size_t size;
    uint8_t *b = encode(&r, &size);
    cr_assert_eq(size, STP_JREC_HEADER + STP_JREC_MSG_FIXED + r.queue_len + r.tail_len);
    cr_assert_eq(stp_rd32(b + 8), size - STP_JREC_HEADER);
    cr_assert_eq(b[12], STP_JREC_MSG);
    cr_assert_eq(b[13], STP_JMSG_NEEDS_ESCAPE);
    cr_assert_eq(b[16], 0x08); /* lsn, low byte first */
    cr_assert_eq(b[23], 0x01);
    cr_assert_eq(stp_rd64(b + 32), r.expires_ms);
    cr_assert_eq(stp_rd16(b + 48), r.queue_len);
    cr_assert_eq(stp_rd32(b + 52), r.tail_len);
    cr_assert_eq(memcmp(b + 56, QUEUE, r.queue_len), 0);
    cr_assert_eq(stp_rd32(b + 4), stp_crc32c(0, b + 8, size - 8));
    free(b);
}

Test(record, two_records_back_to_back)
{
    struct stp_jrec a = msg_rec(), s = {.type = STP_JREC_SETTLE, .lsn = 9, .key = 1};
    size_t na = stp_jrec_size(&a), ns = stp_jrec_size(&s);
    uint8_t *b = malloc(na + ns);
    stp_jrec_encode(&a, b);
    stp_jrec_encode(&s, b + na);
    struct stp_jrec out;
    size_t used;
    cr_assert_eq(stp_jrec_decode(b, na + ns, &out, &used), STP_JDEC_OK);
    cr_assert_eq(used, na);
    cr_assert_eq(stp_jrec_decode(b + na, ns, &out, &used), STP_JDEC_OK);
    cr_assert_eq(out.type, STP_JREC_SETTLE);
    free(b);
}

Test(record, every_single_bit_flip_is_caught)
{
    struct stp_jrec r = msg_rec();
    size_t size;
    uint8_t *b = encode(&r, &size);
    for (size_t bit = 0; bit < size * 8; bit++) {
        b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        struct stp_jrec out;
        size_t used;
        enum stp_jdec d = stp_jrec_decode(b, size, &out, &used);
        bool in_len = bit / 8 >= STP_JOFF_LEN && bit / 8 < STP_JOFF_LEN + 4;
        bool grew = stp_rd32(b + STP_JOFF_LEN) > size - STP_JREC_HEADER;
        if (d == STP_JDEC_SHORT)
            cr_assert(in_len && grew, "bit %zu: SHORT without a longer length", bit);
        else
            cr_assert_eq(d, STP_JDEC_BAD, "bit %zu decodes", bit);
        b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    free(b);
}

Test(record, every_truncation_is_short)
{
    struct stp_jrec recs[] = {msg_rec(), {.type = STP_JREC_SETTLE, .lsn = 5, .key = 2}};
    for (size_t i = 0; i < 2; i++) {
        size_t size;
        uint8_t *b = encode(&recs[i], &size);
        for (size_t k = 0; k < size; k++)
            cr_assert_eq(decode_copy(b, k), STP_JDEC_SHORT, "record %zu cut at %zu", i, k);
        cr_assert_eq(decode_copy(b, size), STP_JDEC_OK);
        free(b);
    }
}

Test(record, magic_prefixes)
{
    cr_assert_eq(decode_copy((const uint8_t *)"S", 1), STP_JDEC_SHORT);
    cr_assert_eq(decode_copy((const uint8_t *)"STP", 3), STP_JDEC_SHORT);
    cr_assert_eq(decode_copy((const uint8_t *)"X", 1), STP_JDEC_BAD);
    cr_assert_eq(decode_copy((const uint8_t *)"STX", 3), STP_JDEC_BAD);
    cr_assert_eq(decode_copy((const uint8_t *)"JPTS", 4), STP_JDEC_BAD);
    cr_assert_eq(decode_copy((const uint8_t *)"STPJ", 4), STP_JDEC_SHORT);
    uint8_t zeros[64] = {0};
    cr_assert_eq(decode_copy(zeros, sizeof(zeros)), STP_JDEC_BAD);
}

/* A well-checksummed record with one field changed is still refused. */
static void assert_refused(void (*change)(uint8_t *b, size_t size), const char *what)
{
    struct stp_jrec r = msg_rec();
    size_t size;
    uint8_t *b = encode(&r, &size);
    change(b, size);
    recrc(b, size);
    cr_assert_eq(decode_copy(b, size), STP_JDEC_BAD, "%s", what);
    /* A prefix that already shows the bad field is BAD too, not SHORT. */
    cr_assert_eq(decode_copy(b, STP_JOFF_QUEUE), STP_JDEC_BAD, "%s (prefix)", what);
    free(b);
}

static void bad_type(uint8_t *b, size_t size)
{
    b[STP_JOFF_TYPE] = 9;
}

static void type_zero(uint8_t *b, size_t size)
{
    b[STP_JOFF_TYPE] = 0;
}

static void settle_with_payload(uint8_t *b, size_t size)
{
    b[STP_JOFF_TYPE] = STP_JREC_SETTLE;
}

static void noop_with_payload(uint8_t *b, size_t size)
{
    b[STP_JOFF_TYPE] = STP_JREC_NOOP;
}

static void queue_len_zero(uint8_t *b, size_t size)
{
    uint32_t q = stp_rd16(b + STP_JOFF_QUEUE_LEN);
    stp_wr16(b + STP_JOFF_QUEUE_LEN, 0);
    stp_wr32(b + STP_JOFF_TAIL_LEN, stp_rd32(b + STP_JOFF_TAIL_LEN) + q);
}

static void lengths_disagree(uint8_t *b, size_t size)
{
    stp_wr32(b + STP_JOFF_TAIL_LEN, stp_rd32(b + STP_JOFF_TAIL_LEN) - 1);
}

static void queue_longer(uint8_t *b, size_t size)
{
    stp_wr16(b + STP_JOFF_QUEUE_LEN, (uint16_t)(stp_rd16(b + STP_JOFF_QUEUE_LEN) + 1));
}

static void reserved_set(uint8_t *b, size_t size)
{
    b[STP_JOFF_RSV + 1] = 1;
}

static void queue_reserved_set(uint8_t *b, size_t size)
{
    b[STP_JOFF_QUEUE_RSV] = 1;
}

static void payload_over_max(uint8_t *b, size_t size)
{
    stp_wr32(b + STP_JOFF_LEN, STP_JREC_MAX_PAYLOAD + 1);
}

static void msg_payload_under_fixed(uint8_t *b, size_t size)
{
    stp_wr32(b + STP_JOFF_LEN, STP_JREC_MSG_FIXED);
}

Test(record, bad_fields_are_refused_even_with_a_good_checksum)
{
    assert_refused(bad_type, "unknown type");
    assert_refused(type_zero, "type 0");
    assert_refused(settle_with_payload, "SETTLE with a payload");
    assert_refused(noop_with_payload, "NOOP with a payload");
    assert_refused(queue_len_zero, "queue_len 0");
    assert_refused(lengths_disagree, "queue + tail + fixed != payload");
    assert_refused(queue_longer, "queue longer than the payload allows");
    assert_refused(reserved_set, "header reserved bytes");
    assert_refused(queue_reserved_set, "MSG reserved bytes");
    assert_refused(payload_over_max, "payload over the maximum");
    assert_refused(msg_payload_under_fixed, "MSG payload shorter than its fixed part");
}

Test(record, deliver_with_payload_is_refused)
{
    struct stp_jrec r = {.type = STP_JREC_DELIVER, .lsn = 3, .key = 1};
    uint8_t b[STP_JREC_HEADER + 8];
    stp_jrec_encode(&r, b);
    stp_wr32(b + STP_JOFF_LEN, 8);
    memset(b + STP_JREC_HEADER, 0, 8);
    recrc(b, sizeof(b));
    cr_assert_eq(decode_copy(b, sizeof(b)), STP_JDEC_BAD);
    cr_assert_eq(decode_copy(b, 13), STP_JDEC_BAD);
}

Test(record, bad_checksum_and_wrong_magic)
{
    struct stp_jrec r = msg_rec();
    size_t size;
    uint8_t *b = encode(&r, &size);
    b[size - 1] ^= 0x40;
    cr_assert_eq(decode_copy(b, size), STP_JDEC_BAD);
    b[size - 1] ^= 0x40;
    b[STP_JOFF_CRC] ^= 1;
    cr_assert_eq(decode_copy(b, size), STP_JDEC_BAD);
    b[STP_JOFF_CRC] ^= 1;
    b[0] = 's';
    cr_assert_eq(decode_copy(b, size), STP_JDEC_BAD);
    free(b);
}

Test(record, oversized_lengths)
{
    struct stp_jrec r = msg_rec();
    r.queue_len = 65536;
    cr_assert_eq(stp_jrec_size(&r), 0);
    r.queue_len = 65535;
    r.tail_len = 0;
    cr_assert_eq(stp_jrec_size(&r), STP_JREC_HEADER + STP_JREC_MSG_FIXED + 65535);
    r.queue_len = 0;
    cr_assert_eq(stp_jrec_size(&r), 0);
    r.queue_len = 1;
    r.tail_len = STP_JREC_MAX_PAYLOAD - STP_JREC_MSG_FIXED - 1;
    cr_assert_eq(stp_jrec_size(&r), STP_JREC_HEADER + STP_JREC_MAX_PAYLOAD);
    r.tail_len++;
    cr_assert_eq(stp_jrec_size(&r), 0);
    r.tail_len = UINT32_MAX;
    cr_assert_eq(stp_jrec_size(&r), 0);
    struct stp_jrec t = {.type = 0};
    cr_assert_eq(stp_jrec_size(&t), 0);
    t.type = 0x7f;
    cr_assert_eq(stp_jrec_size(&t), 0);
}

Test(record, largest_record_round_trips)
{
    struct stp_jrec r = msg_rec();
    r.queue_len = 1;
    r.tail_len = STP_JREC_MAX_PAYLOAD - STP_JREC_MSG_FIXED - 1;
    char *tail = calloc(1, r.tail_len);
    cr_assert_not_null(tail);
    tail[r.tail_len - 1] = 'z';
    r.tail = tail;
    size_t size;
    uint8_t *b = encode(&r, &size);
    struct stp_jrec out;
    size_t used;
    cr_assert_eq(stp_jrec_decode(b, size, &out, &used), STP_JDEC_OK);
    cr_assert_eq(out.tail[out.tail_len - 1], 'z');
    cr_assert_eq(stp_jrec_decode(b, size - 1, &out, &used), STP_JDEC_SHORT);
    free(b);
    free(tail);
}

/* --- DEDUP records (issue 13) --- */

static const char DID[] = "order-7f3a-0001";

static struct stp_jrec dedup_rec(void)
{
    return (struct stp_jrec){
        .type = STP_JREC_DEDUP,
        .lsn = 4242,
        .seen_ms = 1767225600123ull,
        .queue = QUEUE,
        .queue_len = sizeof(QUEUE) - 1,
        .id = DID,
        .id_len = sizeof(DID) - 1,
    };
}

Test(record, dedup_round_trip_and_layout)
{
    struct stp_jrec r = dedup_rec();
    size_t size;
    uint8_t *b = encode(&r, &size);
    cr_assert_eq(size, STP_JREC_HEADER + STP_JREC_DEDUP_FIXED + r.queue_len + r.id_len);
    cr_assert_eq(b[12], STP_JREC_DEDUP);
    cr_assert_eq(stp_rd64(b + 32), r.seen_ms);
    cr_assert_eq(stp_rd16(b + 40), r.queue_len);
    cr_assert_eq(stp_rd16(b + 42), r.id_len);
    cr_assert_eq(stp_rd32(b + 44), 0);
    cr_assert_eq(memcmp(b + 48, QUEUE, r.queue_len), 0);
    cr_assert_eq(memcmp(b + 48 + r.queue_len, DID, r.id_len), 0);
    struct stp_jrec out;
    size_t used = 0;
    cr_assert_eq(stp_jrec_decode(b, size, &out, &used), STP_JDEC_OK);
    cr_assert_eq(used, size);
    cr_assert_eq(out.type, STP_JREC_DEDUP);
    cr_assert_eq(out.lsn, r.lsn);
    cr_assert_eq(out.seen_ms, r.seen_ms);
    cr_assert_eq(out.queue_len, r.queue_len);
    cr_assert_eq(out.id_len, r.id_len);
    cr_assert_eq(memcmp(out.queue, QUEUE, r.queue_len), 0);
    cr_assert_eq(memcmp(out.id, DID, r.id_len), 0);
    cr_assert_eq(out.tail_len, 0, "a DEDUP record has no tail");
    free(b);
}

Test(record, dedup_sizes_are_bounded)
{
    struct stp_jrec r = dedup_rec();
    r.id_len = 0;
    cr_assert_eq(stp_jrec_size(&r), 0, "an empty id");
    r.id_len = STP_JREC_DEDUP_MAX_ID + 1;
    cr_assert_eq(stp_jrec_size(&r), 0, "an id over the bound");
    r.id_len = 1;
    r.queue_len = 0;
    cr_assert_eq(stp_jrec_size(&r), 0, "no queue");
    r.queue_len = 65536;
    cr_assert_eq(stp_jrec_size(&r), 0, "a queue over 65535 bytes");
}

Test(record, dedup_every_bit_flip_and_truncation)
{
    struct stp_jrec r = dedup_rec();
    size_t size;
    uint8_t *b = encode(&r, &size);
    for (size_t k = 0; k < size; k++)
        cr_assert_eq(decode_copy(b, k), STP_JDEC_SHORT, "cut at %zu", k);
    for (size_t bit = 0; bit < size * 8; bit++) {
        b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        struct stp_jrec out;
        size_t used;
        enum stp_jdec d = stp_jrec_decode(b, size, &out, &used);
        bool in_len = bit / 8 >= STP_JOFF_LEN && bit / 8 < STP_JOFF_LEN + 4;
        bool grew = stp_rd32(b + STP_JOFF_LEN) > size - STP_JREC_HEADER;
        if (d == STP_JDEC_SHORT)
            cr_assert(in_len && grew, "bit %zu: SHORT without a longer length", bit);
        else
            cr_assert_eq(d, STP_JDEC_BAD, "bit %zu decodes", bit);
        b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    free(b);
}

/* A DEDUP record with one field changed and a good checksum is refused,
 * and so is the prefix that already shows the bad field. */
static void assert_dedup_refused(void (*change)(uint8_t *b), size_t prefix, const char *what)
{
    struct stp_jrec r = dedup_rec();
    size_t size;
    uint8_t *b = encode(&r, &size);
    change(b);
    recrc(b, size);
    cr_assert_eq(decode_copy(b, size), STP_JDEC_BAD, "%s", what);
    cr_assert_eq(decode_copy(b, prefix), STP_JDEC_BAD, "%s (prefix of %zu)", what, prefix);
    free(b);
}

static void dedup_queue_zero(uint8_t *b)
{
    stp_wr16(b + STP_JOFF_DID_LEN,
             (uint16_t)(stp_rd16(b + STP_JOFF_DID_LEN) + stp_rd16(b + STP_JOFF_DQUEUE_LEN)));
    stp_wr16(b + STP_JOFF_DQUEUE_LEN, 0);
}

static void dedup_id_zero(uint8_t *b)
{
    stp_wr16(b + STP_JOFF_DQUEUE_LEN,
             (uint16_t)(stp_rd16(b + STP_JOFF_DQUEUE_LEN) + stp_rd16(b + STP_JOFF_DID_LEN)));
    stp_wr16(b + STP_JOFF_DID_LEN, 0);
}

static void dedup_id_too_long(uint8_t *b)
{
    stp_wr16(b + STP_JOFF_DID_LEN, STP_JREC_DEDUP_MAX_ID + 1);
}

static void dedup_reserved(uint8_t *b)
{
    b[STP_JOFF_DRSV + 2] = 1;
}

static void dedup_lengths_disagree(uint8_t *b)
{
    stp_wr16(b + STP_JOFF_DID_LEN, (uint16_t)(stp_rd16(b + STP_JOFF_DID_LEN) - 1));
}

static void dedup_payload_short(uint8_t *b)
{
    stp_wr32(b + STP_JOFF_LEN, STP_JREC_DEDUP_FIXED + 1);
}

Test(record, dedup_bad_fields_are_refused_even_with_a_good_checksum)
{
    assert_dedup_refused(dedup_queue_zero, STP_JOFF_DID_LEN, "queue_len 0");
    assert_dedup_refused(dedup_id_zero, STP_JOFF_DRSV, "id_len 0");
    assert_dedup_refused(dedup_id_too_long, STP_JOFF_DRSV, "id over the bound");
    assert_dedup_refused(dedup_reserved, STP_JOFF_DQUEUE, "reserved bytes");
    assert_dedup_refused(dedup_lengths_disagree, STP_JOFF_DQUEUE, "lengths disagree");
    assert_dedup_refused(dedup_payload_short, STP_JOFF_TYPE + 1, "payload under fixed + 2");
}
