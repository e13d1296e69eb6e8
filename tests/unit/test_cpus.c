/* Unit tests of stp_available_cpus and its cgroup quota reading (src/cpus.c),
 * with crafted cgroup v1 and v2 trees in a temporary directory. */
#include "stampede/config.h"
#include "stampede/error.h"

#include <criterion/criterion.h>
#include <ftw.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char root[64];

static void make_root(void)
{
    strcpy(root, "/tmp/stp-cgroup-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void remove_root(void)
{
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes ROOT/rel (creating its directories) with text. */
static void put(const char *rel, const char *text)
{
    char path[PATH_MAX];
    int len = snprintf(path, sizeof(path), "%s/%s", root, rel);
    cr_assert(len > 0 && (size_t)len < sizeof(path));
    for (char *s = path + strlen(root) + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        mkdir(path, 0755);
        *s = '/';
    }
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot create %s", path);
    fputs(text, f);
    fclose(f);
}

TestSuite(cpus, .init = make_root, .fini = remove_root);

Test(cpus, cpu_max_values)
{
    unsigned n = 99;
    cr_assert_eq(stp_cpus_parse_cpu_max("max 100000\n", &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(stp_cpus_parse_cpu_max("max\n", &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(stp_cpus_parse_cpu_max("150000 100000\n", &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(stp_cpus_parse_cpu_max("100000 100000", &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(stp_cpus_parse_cpu_max("200000 100000\n", &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(stp_cpus_parse_cpu_max("200001 100000\n", &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(stp_cpus_parse_cpu_max("5000 100000\n", &n), 0);
    cr_assert_eq(n, 1, "a fraction of a CPU still gets one");
    cr_assert_eq(stp_cpus_parse_cpu_max("400000 50000\n", &n), 0);
    cr_assert_eq(n, 8);
}

Test(cpus, cpu_max_garbage)
{
    unsigned n = 7;
    cr_assert_eq(stp_cpus_parse_cpu_max("", &n), STP_EINVAL);
    cr_assert_eq(stp_cpus_parse_cpu_max("abc 100000", &n), STP_EINVAL);
    cr_assert_eq(stp_cpus_parse_cpu_max("100000 0", &n), STP_EINVAL);
    cr_assert_eq(stp_cpus_parse_cpu_max("100000 x", &n), STP_EINVAL);
    cr_assert_eq(stp_cpus_parse_cpu_max("-5 100000", &n), STP_EINVAL);
    cr_assert_eq(stp_cpus_parse_cpu_max("99999999999999999999999 100000", &n), STP_EINVAL);
    cr_assert_eq(n, 7, "a failed parse leaves the output alone");
}

Test(cpus, cfs_values)
{
    unsigned n = 99;
    cr_assert_eq(stp_cpus_parse_cfs("-1\n", "100000\n", &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(stp_cpus_parse_cfs("150000\n", "100000\n", &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(stp_cpus_parse_cfs("50000\n", "100000\n", &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(stp_cpus_parse_cfs("300000", "100000", &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(stp_cpus_parse_cfs("-2\n", "100000\n", &n), STP_EINVAL);
    cr_assert_eq(stp_cpus_parse_cfs("x\n", "100000\n", &n), STP_EINVAL);
    cr_assert_eq(stp_cpus_parse_cfs("100000\n", "0\n", &n), STP_EINVAL);
    cr_assert_eq(stp_cpus_parse_cfs("100000\n", "\n", &n), STP_EINVAL);
}

Test(cpus, v2_own_cgroup)
{
    put("cpu.max", "max 100000\n");
    put("a/b/cpu.max", "250000 100000\n");
    cr_assert_eq(stp_cpus_cgroup_limit(root, "0::/a/b\n"), 3);
}

Test(cpus, v2_ancestor_limit_wins_when_smaller)
{
    put("a/cpu.max", "100000 100000\n");
    put("a/b/cpu.max", "max 100000\n");
    cr_assert_eq(stp_cpus_cgroup_limit(root, "0::/a/b\n"), 1);
}

Test(cpus, v2_container_sees_its_cgroup_at_the_root)
{
    /* /proc/self/cgroup names the host's path, which does not exist here. */
    put("cpu.max", "150000 100000\n");
    cr_assert_eq(stp_cpus_cgroup_limit(root, "0::/docker/0123abcd\n"), 2);
    cr_assert_eq(stp_cpus_cgroup_limit(root, "0::/\n"), 2);
}

Test(cpus, v2_unlimited_and_missing)
{
    put("a/cpu.max", "max 100000\n");
    cr_assert_eq(stp_cpus_cgroup_limit(root, "0::/a\n"), 0);
    cr_assert_eq(stp_cpus_cgroup_limit(root, "0::/nowhere\n"), 0);
    cr_assert_eq(stp_cpus_cgroup_limit(root, ""), 0);
    cr_assert_eq(stp_cpus_cgroup_limit(root, "garbage"), 0);
}

Test(cpus, v2_garbage_file_is_ignored)
{
    put("cpu.max", "lots\n");
    cr_assert_eq(stp_cpus_cgroup_limit(root, "0::/\n"), 0);
}

Test(cpus, v1_cfs_quota)
{
    put("cpu,cpuacct/x/cpu.cfs_quota_us", "150000\n");
    put("cpu,cpuacct/x/cpu.cfs_period_us", "100000\n");
    const char *self = "12:memory:/x\n4:cpu,cpuacct:/x\n1:name=systemd:/x\n";
    cr_assert_eq(stp_cpus_cgroup_limit(root, self), 2);
}

Test(cpus, v1_cpu_directory_and_unlimited)
{
    put("cpu/cpu.cfs_quota_us", "-1\n");
    put("cpu/cpu.cfs_period_us", "100000\n");
    cr_assert_eq(stp_cpus_cgroup_limit(root, "3:cpu:/\n"), 0);
    put("cpu/y/cpu.cfs_quota_us", "400000\n");
    put("cpu/y/cpu.cfs_period_us", "100000\n");
    cr_assert_eq(stp_cpus_cgroup_limit(root, "3:cpu:/y\n"), 4);
}

Test(cpus, v1_only_the_cpu_controller_counts)
{
    put("cpuset/x/cpu.cfs_quota_us", "100000\n");
    put("cpuset/x/cpu.cfs_period_us", "100000\n");
    put("cpu,cpuacct/x/cpu.cfs_quota_us", "100000\n");
    put("cpu,cpuacct/x/cpu.cfs_period_us", "100000\n");
    cr_assert_eq(stp_cpus_cgroup_limit(root, "5:cpuset:/x\n6:cpuacct:/x\n"), 0);
    cr_assert_eq(stp_cpus_cgroup_limit(root, "5:cpuset:/x\n6:cpu,cpuacct:/x\n"), 1);
}

Test(cpus, v1_and_v2_lines_together_take_the_smallest)
{
    put("cpu.max", "300000 100000\n");
    put("cpu/cpu.cfs_quota_us", "200000\n");
    put("cpu/cpu.cfs_period_us", "100000\n");
    cr_assert_eq(stp_cpus_cgroup_limit(root, "0::/\n3:cpu:/\n"), 2);
}

static unsigned affinity_count(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
    return (unsigned)CPU_COUNT(&set);
}

Test(cpus, available_is_within_the_affinity_mask)
{
    unsigned n = stp_available_cpus();
    cr_assert_geq(n, 1);
    cr_assert_leq(n, affinity_count());
}

Test(cpus, available_follows_a_narrowed_affinity_mask)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
    int first = -1;
    for (int i = 0; i < CPU_SETSIZE && first < 0; i++)
        if (CPU_ISSET(i, &set))
            first = i;
    cr_assert_geq(first, 0);
    CPU_ZERO(&set);
    CPU_SET(first, &set);
    cr_assert_eq(sched_setaffinity(0, sizeof(set), &set), 0);
    cr_assert_eq(stp_available_cpus(), 1);
}
