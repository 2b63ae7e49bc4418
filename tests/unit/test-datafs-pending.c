/* SPDX-License-Identifier: MIT */
/* The conversion-pending marker (lib/system/datafs-generation.h) against
 * swtpm (the TPM 2.0 reference code, libtpms), started here on the test's
 * own state directory: defined, read and removed, and an index at its
 * handle that KOS did not define (other attributes, size or a policy)
 * refused and left alone. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "datafs-generation.h"
#include "test.h"

struct swtpm {
        pid_t pid;
        char sock[512];
};

/* swtpm on a new state directory under the test's, in the foreground of a
 * child; 0 once its command socket is there. */
static int swtpm_start(struct swtpm *s) {
        char state[256], tpmstate[300], server[600], ctrl[300];

        if ((size_t)snprintf(state, sizeof state, "%s/tpm", test_tmpdir()) >= sizeof state)
                return -ENAMETOOLONG;
        snprintf(s->sock, sizeof s->sock, "%s/tpm.sock", state);
        snprintf(tpmstate, sizeof tpmstate, "dir=%s", state);
        snprintf(server, sizeof server, "type=unixio,path=%s", s->sock);
        snprintf(ctrl, sizeof ctrl, "type=unixio,path=%s/ctrl.sock", state);
        if (mkdir(state, 0700) < 0 && errno != EEXIST) /* a second start keeps the TPM's state */
                return -errno;
        s->pid = fork();
        if (s->pid < 0)
                return -errno;
        if (s->pid == 0) {
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
                if (null >= 0)
                        (void)dup2(null, STDOUT_FILENO);
                execlp("swtpm", "swtpm", "socket", "--tpm2", "--tpmstate", tpmstate, "--server", server, "--ctrl",
                       ctrl, "--flags", "startup-clear,not-need-init", (char *)NULL);
                _exit(127);
        }
        for (int i = 0; i < 100; i++) {
                struct stat st;
                if (stat(s->sock, &st) == 0)
                        return 0;
                if (waitpid(s->pid, NULL, WNOHANG) == s->pid)
                        return -ENOENT; /* swtpm is not installed, or would not start */
                nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
        }
        return -ETIMEDOUT;
}

static void swtpm_stop(struct swtpm *s) {
        if (s->pid > 0) {
                kill(s->pid, SIGTERM);
                waitpid(s->pid, NULL, 0);
        }
        kos_tpm_select(NULL);
}

static int open_swtpm(struct swtpm *s, struct kos_tpm *t) {
        int r = swtpm_start(s);

        if (r < 0)
                return r;
        kos_tpm_select(s->sock);
        return kos_tpm_open(t);
}

/* The marker at index: defined once, read, removed, as KOS defines it. */
static void marker_cycle(int *failed_, uint32_t index) {
        struct swtpm s = {0};
        struct kos_tpm t;
        struct kos_tpm_nv_public pub;
        int r = open_swtpm(&s, &t), read_before, define_first, read_after, define_again, remove_first, read_removed,
            remove_again;

        if (r < 0) {
                swtpm_stop(&s);
                CHECK(r >= 0);
        }
        read_before = kos_datafs_marker_read(&t, index);
        define_first = kos_datafs_marker_define(&t, index);
        read_after = kos_datafs_marker_read(&t, index);
        define_again = kos_datafs_marker_define(&t, index);
        r = kos_tpm_nv_read_public(&t, index, &pub);
        remove_first = kos_datafs_marker_remove(&t, index);
        read_removed = kos_datafs_marker_read(&t, index);
        remove_again = kos_datafs_marker_remove(&t, index);
        kos_tpm_close(&t);
        swtpm_stop(&s);
        CHECK(read_before == 0);
        CHECK(define_first == 0);
        CHECK(read_after == 1);
        CHECK(define_again == 0); /* a cut boot's marker: kept as it is */
        CHECK(r == 0 && pub.attributes == KOS_DATAFS_PENDING_ATTRIBUTES && pub.data_size == KOS_DATAFS_PENDING_SIZE &&
              pub.auth_policy_size == 0 && pub.name_alg == 0x000b);
        CHECK(remove_first == 0);
        CHECK(read_removed == 0);
        CHECK(remove_again == 0);
}

TEST(datafs_pending_marker_is_defined_once_read_and_removed) {
        marker_cycle(failed_, KOS_DATAFS_PENDING_INDEX);
}

/* The header-being-written marker: the same kind of index at its own
 * handle, which the pending marker's functions never touch. */
TEST(datafs_header_being_written_marker_is_defined_once_read_and_removed_apart_from_the_pending_one) {
        struct swtpm s = {0};
        struct kos_tpm t;
        int r, pending[2] = {-1, -1}, writing[2] = {-1, -1};

        marker_cycle(failed_, KOS_DATAFS_WRITING_INDEX);
        if ((r = open_swtpm(&s, &t)) >= 0) {
                /* Both there, as the encryption's begin has them just before
                 * the head is written; each goes without the other. */
                if (kos_datafs_pending_define(&t) == 0 && kos_datafs_marker_define(&t, KOS_DATAFS_WRITING_INDEX) == 0 &&
                    kos_datafs_pending_remove(&t) == 0) {
                        pending[0] = kos_datafs_pending_read(&t);
                        writing[0] = kos_datafs_marker_read(&t, KOS_DATAFS_WRITING_INDEX);
                }
                if (kos_datafs_pending_define(&t) == 0 && kos_datafs_marker_remove(&t, KOS_DATAFS_WRITING_INDEX) == 0) {
                        pending[1] = kos_datafs_pending_read(&t);
                        writing[1] = kos_datafs_marker_read(&t, KOS_DATAFS_WRITING_INDEX);
                }
                kos_tpm_close(&t);
        }
        swtpm_stop(&s);
        CHECK(r >= 0);
        CHECK(pending[0] == 0 && writing[0] == 1);
        CHECK(pending[1] == 1 && writing[1] == 0);
}

/* An index at the marker's handle with want's public area: read, define
 * and remove all say -EPERM, and it is still there, unchanged. */
static bool refused_and_left_alone(struct kos_tpm *t, const struct kos_tpm_nv_public *want) {
        struct kos_tpm_nv_public have;

        if (kos_tpm_nv_define_space(t, want) < 0)
                return false;
        bool ok = kos_datafs_pending_read(t) == -EPERM && kos_datafs_pending_define(t) == -EPERM &&
                  kos_datafs_pending_remove(t) == -EPERM && kos_tpm_nv_read_public(t, want->index, &have) == 0 &&
                  (have.attributes & ~KOS_TPM_NV_WRITTEN) == want->attributes && have.data_size == want->data_size &&
                  have.auth_policy_size == want->auth_policy_size;
        return kos_tpm_nv_undefine_space(t, want->index) == 0 && ok;
}

TEST(datafs_pending_marker_index_with_other_attributes_size_or_policy_is_not_ours_refused_and_left_alone) {
        const struct kos_tpm_nv_public ours = {
                .index = KOS_DATAFS_PENDING_INDEX,
                .name_alg = 0x000b,
                .attributes = KOS_DATAFS_PENDING_ATTRIBUTES,
                .data_size = KOS_DATAFS_PENDING_SIZE,
        };
        struct kos_tpm_nv_public bigger = ours, counter = ours, with_da = ours, with_policy = ours;
        struct swtpm s = {0};
        struct kos_tpm t;
        int r = open_swtpm(&s, &t);
        bool b = false, c = false, d = false, p = false;

        bigger.data_size = 8;
        counter.attributes = KOS_DATAFS_GENERATION_ATTRIBUTES, counter.data_size = 8;
        with_da.attributes &= ~0x02000000u; /* TPMA_NV_NO_DA */
        with_policy.auth_policy_size = 32;
        memset(with_policy.auth_policy, 0x4b, 32);
        if (r >= 0) {
                b = refused_and_left_alone(&t, &bigger);
                c = refused_and_left_alone(&t, &counter);
                d = refused_and_left_alone(&t, &with_da);
                p = refused_and_left_alone(&t, &with_policy);
                kos_tpm_close(&t);
        }
        swtpm_stop(&s);
        CHECK(r >= 0);
        CHECK(b);
        CHECK(c);
        CHECK(d);
        CHECK(p);
}
