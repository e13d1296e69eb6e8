/*
 * store_internal.h - what the files of src/store share and journal.h does
 * not promise: little-endian access, the record's offsets, the two CRC-32C
 * implementations (for the tests), segment file names and listing.
 */
#ifndef STP_STORE_INTERNAL_H
#define STP_STORE_INTERNAL_H

#include "journal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The magic as it appears in a file: the four bytes 'S' 'T' 'P' 'J'. */
#define STP_JREC_MAGIC "STPJ"
#define STP_JREC_MAGIC_LEN 4u

/* Byte offsets in a record. */
#define STP_JOFF_CRC 4u
#define STP_JOFF_LEN 8u
#define STP_JOFF_TYPE 12u
#define STP_JOFF_FLAGS 13u
#define STP_JOFF_RSV 14u
#define STP_JOFF_LSN 16u
#define STP_JOFF_KEY 24u
#define STP_JOFF_EXPIRES 32u /* MSG payload from here */
#define STP_JOFF_DELIVERIES 40u
#define STP_JOFF_BODY_LEN 44u
#define STP_JOFF_QUEUE_LEN 48u
#define STP_JOFF_QUEUE_RSV 50u
#define STP_JOFF_TAIL_LEN 52u
#define STP_JOFF_QUEUE 56u
#define STP_JOFF_SEEN 32u /* DEDUP payload from here */
#define STP_JOFF_DQUEUE_LEN 40u
#define STP_JOFF_DID_LEN 42u
#define STP_JOFF_DRSV 44u
#define STP_JOFF_DQUEUE 48u

/* Records that count as live in their segment until released. */
static inline bool stp_jrec_pins(uint8_t type)
{
    return type == STP_JREC_MSG || type == STP_JREC_DEDUP;
}

static inline uint16_t stp_rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t stp_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t stp_rd64(const uint8_t *p)
{
    return (uint64_t)stp_rd32(p) | (uint64_t)stp_rd32(p + 4) << 32;
}

static inline void stp_wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void stp_wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void stp_wr64(uint8_t *p, uint64_t v)
{
    stp_wr32(p, (uint32_t)v);
    stp_wr32(p + 4, (uint32_t)(v >> 32));
}

/* --- CRC-32C: both implementations, same contract as stp_crc32c --- */

uint32_t stp_crc32c_sw(uint32_t crc, const void *p, size_t n); /* slicing-by-8 tables */
/* SSE4.2's crc32 instruction; call only when stp_crc32c_hw_available(). */
uint32_t stp_crc32c_hw(uint32_t crc, const void *p, size_t n);
bool stp_crc32c_hw_available(void);

/* --- segment files --- */

/* "%016llx.seg" and its NUL. */
#define STP_SEG_NAME_SIZE 21

void stp_seg_name(char out[STP_SEG_NAME_SIZE], uint64_t lsn);
/* name is exactly 16 lowercase hex digits and ".seg": true and *lsn. */
bool stp_seg_name_parse(const char *name, uint64_t *lsn);

struct stp_seg_file {
    uint64_t lsn;  /* from the name */
    uint64_t size; /* bytes when listed */
};

/* The segment files of the directory open as dirfd, sorted by lsn, in
 * *out (free() it; NULL when none) and *n. Other names are ignored.
 * 0 or a negative STP_E* code. */
int stp_seg_list(int dirfd, struct stp_seg_file **out, size_t *n);

/* MSG and DEDUP records counted by hopping from header to header of the segment
 * (no checksums; stops at the first header that does not look right):
 * how many messages the segment held, for compaction. Reads the file. */
uint64_t stp_seg_count_msgs(int dirfd, uint64_t lsn);

/* errno value to an STP_E* code. */
int stp_err_from_errno(int e);

#endif
