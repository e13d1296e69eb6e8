/*
 * cpus.c - how many CPUs this process may use: the affinity mask, capped by
 * the CPU quota of its cgroup (v2 cpu.max, v1 cpu.cfs_quota_us/period_us) and
 * of every ancestor cgroup, rounded up, at least 1. This is the default worker
 * count, so a container limited to 1.5 CPUs gets 2 workers.
 *
 * Called on the main thread while parsing the configuration; keeps no state.
 */
#include "stampede/config.h"
#include "stampede/error.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Parses one unsigned decimal number (ignoring surrounding blanks) spanning the
 * whole of text[0..len). */
static int parse_u64(const char *text, size_t len, uint64_t *out)
{
    while (len > 0 && (*text == ' ' || *text == '\t')) {
        text++;
        len--;
    }
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\n'))
        len--;
    if (len == 0 || len > 19)
        return STP_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return STP_EINVAL;
        v = v * 10 + (uint64_t)(text[i] - '0');
    }
    *out = v;
    return 0;
}

static unsigned quota_cpus(uint64_t quota, uint64_t period)
{
    uint64_t n = quota / period + (quota % period != 0);
    if (n == 0)
        n = 1;
    return n > UINT_MAX ? UINT_MAX : (unsigned)n;
}

int stp_cpus_parse_cpu_max(const char *text, unsigned *cpus)
{
    const char *sp = strpbrk(text, " \t");
    size_t qlen = sp ? (size_t)(sp - text) : strcspn(text, "\n");
    uint64_t quota, period = 100000;
    if (sp) {
        if (parse_u64(sp, strlen(sp), &period) != 0 || period == 0)
            return STP_EINVAL;
    }
    if (qlen == 3 && memcmp(text, "max", 3) == 0) {
        *cpus = 0;
        return 0;
    }
    if (parse_u64(text, qlen, &quota) != 0)
        return STP_EINVAL;
    *cpus = quota_cpus(quota, period);
    return 0;
}

int stp_cpus_parse_cfs(const char *quota, const char *period, unsigned *cpus)
{
    uint64_t q, p;
    const char *s = quota + strspn(quota, " \t");
    if (s[0] == '-') {
        if (s[1] != '1' || s[2 + strspn(s + 2, " \t\n")] != '\0')
            return STP_EINVAL;
        *cpus = 0;
        return 0;
    }
    if (parse_u64(quota, strlen(quota), &q) != 0)
        return STP_EINVAL;
    if (parse_u64(period, strlen(period), &p) != 0 || p == 0)
        return STP_EINVAL;
    *cpus = quota_cpus(q, p);
    return 0;
}

/* Reads a small file into buf (NUL-terminated). 0 or STP_EIO. */
static int read_small(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return STP_EIO;
    size_t got = fread(buf, 1, n - 1, f);
    int err = ferror(f);
    fclose(f);
    if (err)
        return STP_EIO;
    buf[got] = '\0';
    return 0;
}

/* Reads DIR/NAME into buf. 0 or STP_EIO (also when the path is too long). */
static int read_in(const char *dir, const char *name, char *buf, size_t n)
{
    char path[PATH_MAX];
    int len = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (len < 0 || (size_t)len >= sizeof(path))
        return STP_EIO;
    return read_small(path, buf, n);
}

/* The limit set in one cgroup directory, 0 when none. */
static unsigned dir_limit(const char *dir, int v2)
{
    char a[128], b[128];
    unsigned cpus = 0;
    if (v2) {
        if (read_in(dir, "cpu.max", a, sizeof(a)) != 0 || stp_cpus_parse_cpu_max(a, &cpus) != 0)
            return 0;
        return cpus;
    }
    if (read_in(dir, "cpu.cfs_quota_us", a, sizeof(a)) != 0 ||
        read_in(dir, "cpu.cfs_period_us", b, sizeof(b)) != 0 ||
        stp_cpus_parse_cfs(a, b, &cpus) != 0)
        return 0;
    return cpus;
}

static unsigned min_limit(unsigned a, unsigned b)
{
    if (a == 0)
        return b;
    if (b == 0)
        return a;
    return a < b ? a : b;
}

/* Smallest limit in base/rel and each of its ancestors up to base itself.
 * Levels that do not exist (a container that sees its own cgroup at the root
 * while /proc/self/cgroup names the host's path) are simply skipped. */
static unsigned walk_limit(const char *base, const char *rel, int v2)
{
    char dir[PATH_MAX];
    int n = snprintf(dir, sizeof(dir), "%s%s%s", base, rel[0] == '/' ? "" : "/", rel);
    if (n < 0 || (size_t)n >= sizeof(dir))
        return 0;
    size_t blen = strlen(base);
    unsigned limit = 0;
    for (;;) {
        limit = min_limit(limit, dir_limit(dir, v2));
        char *slash = strrchr(dir, '/');
        if (!slash || (size_t)(slash - dir) < blen)
            break;
        *slash = '\0';
    }
    return limit;
}

/* Does the comma-separated controller list contain "cpu"? */
static int has_cpu_controller(const char *list, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && list[j] != ',')
            j++;
        if (j - i == 3 && memcmp(list + i, "cpu", 3) == 0)
            return 1;
        i = j + 1;
    }
    return 0;
}

/* One line of /proc/self/cgroup: "ID:CONTROLLERS:PATH". */
static unsigned line_limit(const char *root, const char *line, size_t len)
{
    static const char *const v1_dirs[] = {"cpu", "cpu,cpuacct", "cpuacct,cpu"};
    char rel[PATH_MAX], base[PATH_MAX];
    const char *c1 = memchr(line, ':', len);
    const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - line)) : NULL;
    if (!c2)
        return 0;
    size_t rlen = len - (size_t)(c2 + 1 - line);
    if (rlen == 0 || rlen >= sizeof(rel))
        return 0;
    memcpy(rel, c2 + 1, rlen);
    rel[rlen] = '\0';
    if (c1 == line + 1 && line[0] == '0' && c2 == c1 + 1)
        return walk_limit(root, rel, 1);
    if (!has_cpu_controller(c1 + 1, (size_t)(c2 - c1 - 1)))
        return 0;
    unsigned limit = 0;
    for (size_t i = 0; i < sizeof(v1_dirs) / sizeof(v1_dirs[0]); i++) {
        int n = snprintf(base, sizeof(base), "%s/%s", root, v1_dirs[i]);
        if (n < 0 || (size_t)n >= sizeof(base))
            continue;
        limit = min_limit(limit, walk_limit(base, rel, 0));
    }
    return limit;
}

unsigned stp_cpus_cgroup_limit(const char *root, const char *self_cgroup)
{
    char text[4096];
    if (!self_cgroup) {
        if (read_small("/proc/self/cgroup", text, sizeof(text)) != 0)
            return 0;
        self_cgroup = text;
    }
    unsigned limit = 0;
    const char *p = self_cgroup;
    while (*p) {
        size_t len = strcspn(p, "\n");
        limit = min_limit(limit, line_limit(root, p, len));
        p += len;
        if (*p == '\n')
            p++;
    }
    return limit;
}

static unsigned affinity_cpus(void)
{
    for (int ncpu = 1024; ncpu <= 1 << 20; ncpu *= 2) {
        cpu_set_t *set = CPU_ALLOC((size_t)ncpu);
        if (!set)
            break;
        size_t size = CPU_ALLOC_SIZE((size_t)ncpu);
        CPU_ZERO_S(size, set);
        if (sched_getaffinity(0, size, set) == 0) {
            int n = CPU_COUNT_S(size, set);
            CPU_FREE(set);
            return n > 0 ? (unsigned)n : 1;
        }
        CPU_FREE(set);
        if (errno != EINVAL)
            break;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

unsigned stp_available_cpus(void)
{
    unsigned n = affinity_cpus();
    unsigned limit = stp_cpus_cgroup_limit("/sys/fs/cgroup", NULL);
    if (limit != 0 && limit < n)
        n = limit;
    return n > 0 ? n : 1;
}
