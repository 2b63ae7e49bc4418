/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the update bundle reader: cpio "newc" headers from a
 * USB drive or the inbox are parsed before any signature is checked.
 *
 * Each input is installed into an empty ImageFS (under /tmp, cleared before
 * every run) with a keyring holding one key, whose public half is below. The
 * seed corpus (tests/fuzz/corpus/bundle/) holds real bundles signed by that
 * key, so mutations past the signed manifest reach the component reader too.
 * The secret half is not kept: new seeds need a new key pair.
 *
 * The rule checked beyond memory safety: a refused bundle (-EBADMSG) says
 * why and leaves nothing behind: no `active`, no manifest, no component. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bundle-install.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static const char public_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                                 "MCowBQYDK2VwAyEAxqLpfVbeVrnGlQRRGX6hu0akRIE+qmwR8vhdi8cbSyo=\n"
                                 "-----END PUBLIC KEY-----\n";

static char root[64];
static struct kos_keyring ring;

/* Removes every entry of dir (one level: the ImageFS has no deeper trees). */
static void clear_dir(const char *dir) {
        DIR *d = opendir(dir);
        if (!d)
                return;
        for (struct dirent *de; (de = readdir(d));)
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        (void)unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
}

/* Entries of dir that are not leftover temporary files. */
static unsigned count_entries(const char *dir) {
        unsigned n = 0;
        DIR *d = opendir(dir);
        if (!d)
                return 0;
        for (struct dirent *de; (de = readdir(d));)
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

static void path(char *out, size_t size, const char *name) {
        snprintf(out, size, "%s/%s", root, name);
}

static void remove_root(void) {
        static const char *const dirs[] = {"img/components", "img/manifests", "img/boot-state", "img"};
        char p[128];

        for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
                path(p, sizeof p, dirs[i]);
                clear_dir(p);
                (void)rmdir(p);
        }
        (void)rmdir(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        char img[96];

        snprintf(root, sizeof root, "/tmp/kos-fuzz-bundle-XXXXXX");
        if (!mkdtemp(root))
                abort();
        path(img, sizeof img, "img");
        if (kos_imagefs_init(img) < 0 || kos_keyring_add_pem(&ring, public_pem, strlen(public_pem), "fuzz.pem") < 0)
                abort();
        atexit(remove_root);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const dirs[] = {"img/components", "img/manifests", "img/boot-state"};
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        struct kos_bundle_options options = {.tries = 1};
        struct kos_bundle_result result;
        char p[128];

        for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
                path(p, sizeof p, dirs[i]);
                clear_dir(p);
        }
        path(p, sizeof p, "img/active");
        (void)unlink(p);

        int fd = memfd_create("bundle", MFD_CLOEXEC);
        if (fd < 0 || kos_write_all(fd, data, size) < 0 || lseek(fd, 0, SEEK_SET) < 0)
                abort();
        path(p, sizeof p, "img");
        if (kos_imagefs_open(p, &img) < 0)
                abort();
        int r = kos_bundle_install(&img, &ring, fd, &options, &result);
        kos_imagefs_close(&img);
        close(fd);

        if (r == -EBADMSG) {
                if (result.error.msg[0] == '\0')
                        abort(); /* refused without a reason */
                for (size_t i = 0; i < 2; i++) {
                        path(p, sizeof p, dirs[i]);
                        if (count_entries(p) != 0)
                                abort(); /* refused, yet something was left installed */
                }
                path(p, sizeof p, "img/active");
                if (access(p, F_OK) == 0)
                        abort();
        }
        return 0;
}
