/* SPDX-License-Identifier: MIT */
/* kos mkboot: the Boot Kernel (kernel image + initramfs) from an unpacked
 * Debian kernel package. */
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "initramfs.h"
#include "kos.h"
#include "layout.h"

/* What the Boot Kernel needs to reach an ext4 ImageFS on a virtio disk. ext4
 * (and libcrc32c, which erofs needs) look crc32c up through the crypto API, a
 * soft dependency modules.dep does not list: crc32c_generic comes first, by
 * name. */
static const char *const default_modules[] = {"crc32c_generic", "virtio_pci", "virtio_blk", "ext4"};

/* The single lib/modules/<version> of an unpacked kernel package. */
static int kernel_version(const char *kernel_dir, char *ret, size_t size) {
        char path[PATH_MAX];
        struct dirent **names = NULL;
        int n, found = 0;

        snprintf(path, sizeof path, "%s/lib/modules", kernel_dir);
        n = scandir(path, &names, NULL, alphasort);
        if (n < 0)
                return -errno;
        for (int i = 0; i < n; i++) {
                if (names[i]->d_name[0] != '.' && (size_t)snprintf(ret, size, "%s", names[i]->d_name) < size)
                        found++;
                free(names[i]);
        }
        free(names);
        return found == 1 ? 0 : -ENOTUNIQ;
}

static int copy_file(const char *from, const char *to) {
        _cleanup_free_ char *data = NULL;
        size_t len;
        int r = read_path(from, 256 << 20, &data, &len);
        return r < 0 ? r : kos_write_file_atomic_at(AT_FDCWD, to, data, len, 0644);
}

/* PATH of a program installed beside this kos binary (kos-boot-init, kos-system-init). */
static void program_beside_self(const char *name, char *out, size_t size) {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

        self[n > 0 ? n : 0] = '\0';
        char *slash = strrchr(self, '/');
        if (slash)
                *slash = '\0';
        if ((size_t)snprintf(out, size, "%s/%s", self, name) >= size)
                out[0] = '\0';
}

/* The modules named and their dependencies, in load order, with
 * etc/kos/modules listing them for the init. */
static int add_modules(struct initramfs *ir, const char *kernel_dir, const char *const *names, size_t n_names,
                       char ret_version[static 128], size_t *ret_count) {
        char modules_dir[PATH_MAX], path[PATH_MAX], dst[PATH_MAX];
        _cleanup_free_ char *list = NULL;
        int r;

        if ((r = kernel_version(kernel_dir, ret_version, 128)) < 0)
                return fail(EXIT_USAGE, "%s/lib/modules must hold exactly one kernel version", kernel_dir), r;
        snprintf(modules_dir, sizeof modules_dir, "%s/lib/modules/%s", kernel_dir, ret_version);
        if ((r = modules_resolve(modules_dir, names, n_names, &list, ret_count)) < 0)
                return fail(EXIT_USAGE, "cannot resolve modules in %s: %s (run depmod -b %s %s?)", modules_dir, strerror(-r),
                            kernel_dir, ret_version), r;
        if ((r = initramfs_add_data(ir, KOS_IN_ARCHIVE(KOS_MODULES_LIST), list, strlen(list), 0644)) < 0)
                return r;
        for (char *m = strtok(list, "\n"); m && r >= 0; m = strtok(NULL, "\n")) {
                m[strcspn(m, ":")] = '\0'; /* "path: deps" */
                if ((size_t)snprintf(path, sizeof path, "%s/%s", modules_dir, m) >= sizeof path ||
                    (size_t)snprintf(dst, sizeof dst, "lib/modules/%s/%s", ret_version, m) >= sizeof dst)
                        return -ENAMETOOLONG;
                r = initramfs_add_file(ir, dst, path, 0644);
        }
        return r;
}

struct mkboot {
        const char *kernel_dir, *init, *keyring, *output;
        const char *modules[64];
        size_t n_modules;
};

static int build(const struct mkboot *o) {
        char version[128] = "", path[PATH_MAX], vmlinuz[PATH_MAX];
        size_t n_resolved = 0, size = 0;
        int r = 0, code = EXIT_USAGE;

        struct initramfs *ir = initramfs_new();
        if (!ir)
                return fail(EXIT_USAGE, "out of memory");
        const char *dirs[] = {"dev", "proc", "sys", "imagefs", "etc/kos"};
        for (size_t i = 0; i < ELEMENTSOF(dirs) && r >= 0; i++)
                r = initramfs_add_dir(ir, dirs[i]);
        if (r >= 0 && (r = initramfs_add_file(ir, "init", o->init, 0755)) < 0)
                fail(EXIT_USAGE, "cannot add the init %s: %s", o->init, strerror(-r));
        if (r >= 0 && (r = initramfs_add_pem_dir(ir, KOS_IN_ARCHIVE(KOS_KEYRING_DIR), o->keyring)) < 0)
                fail(EXIT_USAGE, "cannot add the keyring %s: %s", o->keyring, r == -ENOKEY ? "no *.pem in it" : strerror(-r));
        if (r >= 0)
                r = add_modules(ir, o->kernel_dir, o->modules, o->n_modules, version, &n_resolved);
        snprintf(vmlinuz, sizeof vmlinuz, "%s/boot/vmlinuz-%s", o->kernel_dir, version);
        if (r >= 0 && mkdir(o->output, 0755) < 0 && errno != EEXIST)
                r = -errno;
        snprintf(path, sizeof path, "%s/initramfs.img", o->output);
        if (r >= 0 && (r = initramfs_write(ir, path, &size)) < 0)
                fail(EXIT_USAGE, "cannot write %s: %s", path, strerror(-r));
        initramfs_free(ir);
        if (r < 0)
                return code;
        snprintf(path, sizeof path, "%s/vmlinuz", o->output);
        if ((r = copy_file(vmlinuz, path)) < 0)
                return fail(EXIT_USAGE, "cannot copy %s: %s", vmlinuz, strerror(-r));
        printf("Boot Kernel %s: %s/vmlinuz, %s/initramfs.img (%zu bytes, %zu modules)\n", version, o->output,
               o->output, size, n_resolved);
        if (size > 4u << 20)
                fprintf(stderr, "kos: warning: the initramfs is larger than 4 MiB\n");
        return EXIT_OK;
}

int cmd_mkboot(int argc, char **argv) {
        static const struct option options[] = {
                {"kernel-dir", required_argument, NULL, 'k'}, {"init", required_argument, NULL, 'i'},
                {"keyring", required_argument, NULL, 'r'},    {"output", required_argument, NULL, 'o'},
                {"module", required_argument, NULL, 'm'},     {"help", no_argument, NULL, 'h'},
                {}};
        struct mkboot o = {0};
        char init[PATH_MAX];
        int c;

        program_beside_self("kos-boot-init", init, sizeof init);
        o.init = init;
        while ((c = getopt_long(argc, argv, "k:i:r:o:m:h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        printf("Usage: kos mkboot --kernel-dir DIR --keyring DIR --output DIR\n"
                               "                  [--init FILE] [--module NAME]...\n\n"
                               "Builds the Boot Kernel from an unpacked Debian kernel package (dpkg-deb -x;\n"
                               "modules.dep made by depmod): OUTPUT/vmlinuz and OUTPUT/initramfs.img, a\n"
                               "reproducible gzip cpio holding the init (default: kos-boot-init beside\n"
                               "kos), the trusted keyring's *.pem files and the modules needed for an\n"
                               "ext4 ImageFS on virtio (virtio_pci virtio_blk ext4 crc32c_generic, plus\n"
                               "any --module) with their dependencies, in load order.\n");
                        return EXIT_OK;
                case 'k':
                        o.kernel_dir = optarg;
                        break;
                case 'i':
                        o.init = optarg;
                        break;
                case 'r':
                        o.keyring = optarg;
                        break;
                case 'o':
                        o.output = optarg;
                        break;
                case 'm':
                        if (o.n_modules >= ELEMENTSOF(o.modules) - ELEMENTSOF(default_modules))
                                return usage_error("mkboot", "too many --module");
                        o.modules[o.n_modules++] = optarg;
                        break;
                default:
                        return usage_error("mkboot", "unknown option");
                }
        }
        if (!o.kernel_dir || !o.keyring || !o.output || optind != argc)
                return usage_error("mkboot", "--kernel-dir, --keyring and --output are required");
        for (size_t i = 0; i < ELEMENTSOF(default_modules); i++)
                o.modules[o.n_modules++] = default_modules[i];
        return build(&o);
}

/* ---- kos mkinitrd: the System Kernel's initrd ---- */

/* Storage, filesystems, device-mapper and the crypto dm-crypt (aes-xts) and
 * libcryptsetup (AF_ALG for LUKS2 key slots) use; aesni_intel and
 * sha256_ssse3 only load on CPUs that have the instructions. */
static const char *const system_modules[] = {
        "crc32c_generic", "virtio_pci", "virtio_blk", "loop",     "squashfs",    "erofs",
        "ext4",        "overlay", "dm_crypt", "dm_verity",     "xts",         "ecb",
        "algif_skcipher", "algif_hash", "aesni_intel", "sha256_ssse3",
};

struct mkinitrd {
        const char *kernel_dir, *init, *keyring, *keystore, *output;
        const char *modules[64];
        size_t n_modules;
};

static int add_system_files(struct initramfs *ir, const struct mkinitrd *o) {
        const char *dirs[] = {"dev", "proc", "sys", "mnt", "imagefs", "newroot", "rw", "run", KOS_IN_ARCHIVE(KOS_INITRD_KEY_DIR)};
        int r = 0;

        for (size_t i = 0; i < ELEMENTSOF(dirs) && r >= 0; i++)
                r = initramfs_add_dir(ir, dirs[i]);
        if (r >= 0 && (r = initramfs_add_program(ir, "init", o->init)) < 0)
                return fail(EXIT_USAGE, "cannot add the init %s and its libraries: %s", o->init, strerror(-r)), r;
        /* mkfs.ext4 formats an empty DataFS on first boot. */
        if ((r = initramfs_add_program(ir, "sbin/mkfs.ext4", "/sbin/mke2fs")) < 0)
                return fail(EXIT_USAGE, "cannot add /sbin/mke2fs (e2fsprogs): %s", strerror(-r)), r;
        if (access("/etc/mke2fs.conf", R_OK) == 0 && (r = initramfs_add_file(ir, "etc/mke2fs.conf", "/etc/mke2fs.conf", 0644)) < 0)
                return r;
        if ((r = initramfs_add_pem_dir(ir, KOS_IN_ARCHIVE(KOS_KEYRING_DIR), o->keyring)) < 0)
                return fail(EXIT_USAGE, "cannot add the keyring %s: %s", o->keyring, r == -ENOKEY ? "no *.pem in it" : strerror(-r)), r;
        if (o->keystore && (r = initramfs_add_dir_files(ir, KOS_IN_ARCHIVE(KOS_INITRD_KEY_DIR), o->keystore, 0600)) < 0)
                return fail(EXIT_USAGE, "cannot add the key store %s: %s", o->keystore, strerror(-r)), r;
        return 0;
}

int cmd_mkinitrd(int argc, char **argv) {
        static const struct option options[] = {
                {"kernel-dir", required_argument, NULL, 'k'}, {"init", required_argument, NULL, 'i'},
                {"keyring", required_argument, NULL, 'r'},    {"keystore", required_argument, NULL, 's'},
                {"output", required_argument, NULL, 'o'},     {"module", required_argument, NULL, 'm'},
                {"help", no_argument, NULL, 'h'},             {}};
        struct mkinitrd o = {0};
        char init[PATH_MAX], version[128];
        size_t n_modules = 0, size = 0;
        int c, r;

        program_beside_self("kos-system-init", init, sizeof init);
        o.init = init;
        while ((c = getopt_long(argc, argv, "k:i:r:s:o:m:h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        printf("Usage: kos mkinitrd --kernel-dir DIR --keyring DIR [--keystore DIR]\n"
                               "                    --output FILE [--init FILE] [--module NAME]...\n\n"
                               "Builds the System Kernel's initrd: kos-system-init (default: beside kos)\n"
                               "with the shared libraries it needs (resolved with ldd), mkfs.ext4 for\n"
                               "a first-boot DataFS, the keyring's *.pem, the key store's files (the\n"
                               "development key provider, /etc/kos/keys/<id>), and the modules for\n"
                               "loop, squashfs, erofs, ext4, overlay, dm-crypt and dm-verity with their\n"
                               "dependencies. Reproducible like 'kos mkboot'.\n");
                        return EXIT_OK;
                case 'k': o.kernel_dir = optarg; break;
                case 'i': o.init = optarg; break;
                case 'r': o.keyring = optarg; break;
                case 's': o.keystore = optarg; break;
                case 'o': o.output = optarg; break;
                case 'm':
                        if (o.n_modules >= ELEMENTSOF(o.modules) - ELEMENTSOF(system_modules))
                                return usage_error("mkinitrd", "too many --module");
                        o.modules[o.n_modules++] = optarg;
                        break;
                default:
                        return usage_error("mkinitrd", "unknown option");
                }
        }
        if (!o.kernel_dir || !o.keyring || !o.output || optind != argc)
                return usage_error("mkinitrd", "--kernel-dir, --keyring and --output are required");
        for (size_t i = 0; i < ELEMENTSOF(system_modules); i++)
                o.modules[o.n_modules++] = system_modules[i];

        struct initramfs *ir = initramfs_new();
        if (!ir)
                return fail(EXIT_USAGE, "out of memory");
        r = add_system_files(ir, &o);
        if (r >= 0)
                r = add_modules(ir, o.kernel_dir, o.modules, o.n_modules, version, &n_modules);
        if (r >= 0 && (r = initramfs_write(ir, o.output, &size)) < 0)
                fail(EXIT_USAGE, "cannot write %s: %s", o.output, strerror(-r));
        initramfs_free(ir);
        if (r < 0)
                return EXIT_USAGE;
        printf("System Kernel initrd for %s: %s (%zu bytes, %zu modules)\n", version, o.output, size, n_modules);
        return EXIT_OK;
}
