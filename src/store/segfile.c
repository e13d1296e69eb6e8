/*
 * segfile.c - segment file names, listing a journal directory, counting a
 * segment's messages; shared by replay and the journal's open. Called on
 * whichever thread opens or replays; nothing here is kept between calls.
 */
#include "store_internal.h"

#include "stampede/array.h"
#include "stampede/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int stp_err_from_errno(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
        return STP_ENOSPC;
    case ENOMEM:
        return STP_ENOMEM;
    case ENOENT:
        return STP_ENOT_FOUND;
    case EEXIST:
        return STP_EEXISTS;
    case EINVAL:
        return STP_EINVAL;
    default:
        return STP_EIO;
    }
}

void stp_seg_name(char out[STP_SEG_NAME_SIZE], uint64_t lsn)
{
    snprintf(out, STP_SEG_NAME_SIZE, "%016" PRIx64 ".seg", lsn);
}

bool stp_seg_name_parse(const char *name, uint64_t *lsn)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = name[i];
        if (c >= '0' && c <= '9')
            v = v << 4 | (uint64_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v << 4 | (uint64_t)(c - 'a' + 10);
        else
            return false;
    }
    if (strcmp(name + 16, ".seg") != 0)
        return false;
    *lsn = v;
    return true;
}

static int by_lsn(const void *a, const void *b)
{
    uint64_t x = ((const struct stp_seg_file *)a)->lsn, y = ((const struct stp_seg_file *)b)->lsn;
    return x < y ? -1 : x > y;
}

/* Append the segment named name (lsn) with its size to *v. */
static int add_file(int dirfd, const char *name, uint64_t lsn, struct stp_seg_file **v, size_t *n,
                    size_t *cap)
{
    struct stat sb;
    if (fstatat(dirfd, name, &sb, 0) != 0)
        return errno == ENOENT ? 0 : stp_err_from_errno(errno); /* raced with an unlink */
    if (!S_ISREG(sb.st_mode))
        return 0;
    if (stp_array_reserve(v, cap, *n + 1, sizeof(**v)) != 0)
        return STP_ENOMEM;
    (*v)[(*n)++] = (struct stp_seg_file){lsn, (uint64_t)sb.st_size};
    return 0;
}

int stp_seg_list(int dirfd, struct stp_seg_file **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        int rc = stp_err_from_errno(errno);
        if (fd >= 0)
            close(fd);
        return rc;
    }
    rewinddir(d);
    size_t cap = 0;
    int rc = 0;
    struct dirent *e;
    uint64_t lsn;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (stp_seg_name_parse(e->d_name, &lsn))
            rc = add_file(dirfd, e->d_name, lsn, out, n, &cap);
    }
    closedir(d);
    if (rc != 0) {
        free(*out);
        *out = NULL;
        *n = 0;
        return rc;
    }
    if (*n > 1)
        qsort(*out, *n, sizeof(**out), by_lsn);
    return 0;
}

/* MSG headers in b[0, size), hopping by the length fields. */
static uint64_t count_in(const uint8_t *b, size_t size)
{
    uint64_t msgs = 0;
    size_t off = 0;
    while (size - off >= STP_JREC_HEADER && memcmp(b + off, STP_JREC_MAGIC, 4) == 0) {
        uint32_t plen = stp_rd32(b + off + STP_JOFF_LEN);
        if (plen > STP_JREC_MAX_PAYLOAD || plen > size - off - STP_JREC_HEADER)
            break;
        if (stp_jrec_pins(b[off + STP_JOFF_TYPE]))
            msgs++;
        off += STP_JREC_HEADER + plen;
    }
    return msgs;
}

uint64_t stp_seg_count_msgs(int dirfd, uint64_t lsn)
{
    char name[STP_SEG_NAME_SIZE];
    stp_seg_name(name, lsn);
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat sb;
    uint64_t msgs = 0;
    if (fstat(fd, &sb) == 0 && sb.st_size > 0) {
        size_t size = (size_t)sb.st_size;
        void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            madvise(m, size, MADV_SEQUENTIAL);
            msgs = count_in(m, size);
            munmap(m, size);
        }
    }
    close(fd);
    return msgs;
}
