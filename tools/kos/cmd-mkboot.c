/* SPDX-License-Identifier: MIT */
/* kos mkboot: the Boot Kernel (kernel image + initramfs, optionally a signed
 * UKI) from an unpacked Debian kernel package or a kernel with its drivers
 * built in; kos mkinitrd: the System Kernel's initrd. */
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "initramfs.h"
#include "datafs-recovery.h"
#include "kos.h"
#include "layout.h"
#include "tpm-policy.h"
#include "uki.h"

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
        /* Installed (make install, kos-tools): /usr/bin/kos, the inits in /usr/lib/kos/. */
        else if (access(out, F_OK) < 0 && (size_t)snprintf(out, size, "%s/../lib/kos/%s", self, name) >= size)
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

/* Where the UKI's sections go (virtual addresses inside the image). The
 * systemd stub's own sections end well below UKI_OSREL_VMA (252: SizeOfImage
 * 0x19300, checked below); the kernel comes at 32 MiB and the initramfs after
 * it, on the next MiB, so a larger kernel cannot overlap it. */
#define UKI_OSREL_VMA 0x20000u
#define UKI_CMDLINE_VMA 0x30000u
#define UKI_LINUX_VMA 0x2000000u
#define UKI_CMDLINE_MAX 4096
#define DEFAULT_STUB "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
#define DEFAULT_UKI_CMDLINE "console=ttyS0 panic=-1 loglevel=4"
/* systemd-boot lists a UKI under \EFI\Linux only with an .osrel; fixed text,
 * so the image stays reproducible. */
static const char default_osrel[] = "NAME=\"KOS Boot Kernel\"\nID=kos-boot\nPRETTY_NAME=\"KOS Boot Kernel\"\n";

/* The stub's SizeOfImage (PE32+ optional header), to check the sections we
 * add land above it. */
static int stub_image_size(const char *stub, uint32_t *ret) {
        _cleanup_free_ char *data = NULL;
        size_t len;
        uint32_t pe;
        int r = read_path(stub, 16 << 20, &data, &len);

        if (r < 0)
                return r;
        if (len < 0x40 || memcmp(data, "MZ", 2) != 0)
                return -ENOEXEC;
        memcpy(&pe, data + 0x3c, sizeof pe);
        /* "PE\0\0", the 20-byte file header, then SizeOfImage at offset 56 of the optional header. */
        if (pe > len || len - pe < 24 + 60 || memcmp(data + pe, "PE\0\0", 4) != 0)
                return -ENOEXEC;
        memcpy(ret, data + pe + 24 + 56, sizeof *ret);
        return 0;
}

static int file_size(const char *path, uint64_t *ret) {
        struct stat st;
        if (stat(path, &st) < 0)
                return -errno;
        *ret = (uint64_t)st.st_size;
        return 0;
}

/* objcopy stamps the PE header with the time of the build (binutils 2.40
 * honours no SOURCE_DATE_EPOCH there) and a checksum over it: both become 0,
 * so the same inputs give the same bytes. The firmware checks neither, and
 * the Authenticode hash that sbsign signs skips the checksum anyway. */
static int clear_pe_timestamp(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        const uint32_t zero = 0;
        uint32_t pe;
        char magic[4];

        if (fd < 0)
                return -errno;
        if (pread(fd, &pe, sizeof pe, 0x3c) != sizeof pe || pread(fd, magic, sizeof magic, pe) != sizeof magic ||
            memcmp(magic, "PE\0\0", 4) != 0)
                return -ENOEXEC;
        /* TimeDateStamp: file header + 4; CheckSum: optional header + 64. */
        if (pwrite(fd, &zero, sizeof zero, (off_t)pe + 8) != sizeof zero ||
            pwrite(fd, &zero, sizeof zero, (off_t)pe + 24 + 64) != sizeof zero)
                return -EIO;
        return 0;
}

struct uki {
        const char *output, *stub, *cmdline, *osrel, *sign_key, *sign_cert;
        bool has_security_version;
        uint32_t security_version;
};

/* OUTPUT: the stub with .osrel, .cmdline, .linux and .initrd added by
 * objcopy (ukify is not in Debian 12), signed with sbsign when a key is
 * given. The same inputs give the same bytes before signing. */
static int write_uki(const struct uki *u, const char *dir, const char *kernel, const char *initramfs) {
        char osrel[PATH_MAX], cmdline[PATH_MAX], tmp[PATH_MAX], tmp_signed[PATH_MAX];
        char a_osrel[PATH_MAX + 16], a_cmdline[PATH_MAX + 16], a_linux[PATH_MAX + 16], a_initrd[PATH_MAX + 16];
        char v_osrel[64], v_cmdline[64], v_linux[64], v_initrd[64];
        uint64_t kernel_size = 0, initrd_vma;
        uint32_t stub_size = 0;
        int r;

        if ((r = stub_image_size(u->stub, &stub_size)) < 0)
                return fail(EXIT_USAGE, "cannot read the EFI stub %s (package systemd-boot-efi): %s", u->stub,
                            strerror(-r));
        if (stub_size > UKI_OSREL_VMA)
                return fail(EXIT_USAGE, "the EFI stub %s is larger than expected (0x%x bytes)", u->stub, stub_size);
        /* The security version goes last in the signed command line, where the
         * Boot Kernel reads it back (lib/boot/uki.h). */
        char full_cmdline[UKI_CMDLINE_MAX + 64];
        if ((size_t)snprintf(full_cmdline, sizeof full_cmdline, "%s", u->cmdline) >= sizeof full_cmdline)
                return fail(EXIT_USAGE, "the UKI command line is longer than %d bytes", UKI_CMDLINE_MAX);
        if (u->has_security_version)
                snprintf(full_cmdline + strlen(full_cmdline), sizeof full_cmdline - strlen(full_cmdline),
                         "%s" KOS_BK_SECURITY_VERSION_PARAM "=%" PRIu32, full_cmdline[0] ? " " : "", u->security_version);
        if (strlen(full_cmdline) > UKI_CMDLINE_MAX)
                return fail(EXIT_USAGE, "the UKI command line is longer than %d bytes", UKI_CMDLINE_MAX);
        if ((r = file_size(kernel, &kernel_size)) < 0)
                return fail(EXIT_USAGE, "cannot read %s: %s", kernel, strerror(-r));
        initrd_vma = UKI_LINUX_VMA + ((kernel_size + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1));

        snprintf(cmdline, sizeof cmdline, "%s/cmdline", dir);
        if ((r = kos_write_file_atomic_at(AT_FDCWD, cmdline, full_cmdline, strlen(full_cmdline), 0644)) < 0)
                return fail(EXIT_USAGE, "cannot write %s: %s", cmdline, strerror(-r));
        snprintf(osrel, sizeof osrel, "%s/os-release", dir);
        if (u->osrel)
                r = copy_file(u->osrel, osrel);
        else
                r = kos_write_file_atomic_at(AT_FDCWD, osrel, default_osrel, strlen(default_osrel), 0644);
        if (r < 0)
                return fail(EXIT_USAGE, "cannot write %s: %s", osrel, strerror(-r));

        snprintf(a_osrel, sizeof a_osrel, ".osrel=%s", osrel);
        snprintf(a_cmdline, sizeof a_cmdline, ".cmdline=%s", cmdline);
        snprintf(a_linux, sizeof a_linux, ".linux=%s", kernel);
        snprintf(a_initrd, sizeof a_initrd, ".initrd=%s", initramfs);
        snprintf(v_osrel, sizeof v_osrel, ".osrel=0x%x", UKI_OSREL_VMA);
        snprintf(v_cmdline, sizeof v_cmdline, ".cmdline=0x%x", UKI_CMDLINE_VMA);
        snprintf(v_linux, sizeof v_linux, ".linux=0x%x", UKI_LINUX_VMA);
        snprintf(v_initrd, sizeof v_initrd, ".initrd=0x%" PRIx64, initrd_vma);
        if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", u->output) >= sizeof tmp ||
            (size_t)snprintf(tmp_signed, sizeof tmp_signed, "%s.signed.tmp", u->output) >= sizeof tmp_signed)
                return fail(EXIT_USAGE, "--uki path too long");
        char *const objcopy[] = {"objcopy", "--add-section", a_osrel, "--change-section-vma", v_osrel,
                                 "--add-section", a_cmdline, "--change-section-vma", v_cmdline,
                                 "--add-section", a_linux, "--change-section-vma", v_linux,
                                 "--add-section", a_initrd, "--change-section-vma", v_initrd,
                                 (char *)u->stub, tmp, NULL};
        if ((r = run_program(objcopy, NULL, 0)) < 0) {
                unlink(tmp);
                return fail(EXIT_USAGE, "objcopy could not build the UKI %s", u->output);
        }
        if ((r = clear_pe_timestamp(tmp)) < 0) {
                unlink(tmp);
                return fail(EXIT_USAGE, "cannot clear the PE time stamp of %s: %s", tmp, strerror(-r));
        }
        if (u->sign_key) {
                char *const sbsign[] = {"sbsign", "--key", (char *)u->sign_key, "--cert", (char *)u->sign_cert,
                                        "--output", tmp_signed, tmp, NULL};
                r = run_program(sbsign, NULL, 0);
                unlink(tmp);
                if (r < 0) {
                        unlink(tmp_signed);
                        return fail(EXIT_USAGE, "sbsign could not sign the UKI with %s (package sbsigntool)", u->sign_key);
                }
                if (rename(tmp_signed, u->output) < 0)
                        return fail(EXIT_USAGE, "cannot write %s: %m", u->output);
        } else if (rename(tmp, u->output) < 0) {
                return fail(EXIT_USAGE, "cannot write %s: %m", u->output);
        }
        return EXIT_OK;
}

/* The kernel decompresses an LZ4 initramfs several times faster than a
 * gzip one; it takes LZ4's legacy frame only (lz4 -l, package lz4). zstd
 * (package zstd) packs tighter than gzip -9 and decompresses about twice as
 * fast: the System Kernel's initrd, which kexec hashes twice
 * (kexec_file_load, then purgatory), uses it. Neither tool puts a name or
 * a time in its frame, so the same cpio gives the same bytes. */
static int write_compressed(struct initramfs *ir, const char *compress, const char *output, size_t *ret_size) {
        char raw[PATH_MAX];
        uint64_t size = 0;
        int r;

        if ((size_t)snprintf(raw, sizeof raw, "%s.cpio", output) >= sizeof raw)
                return -ENAMETOOLONG;
        if ((r = initramfs_write_uncompressed(ir, raw, ret_size)) < 0)
                return r;
        char *const lz4[] = {"lz4", "-l", "-9", "-q", "-f", raw, (char *)output, NULL};
        char *const zstd[] = {"zstd", "-19", "-q", "-f", "--no-progress", raw, "-o", (char *)output, NULL};
        r = run_program(strcmp(compress, "lz4") == 0 ? lz4 : zstd, NULL, 0);
        unlink(raw);
        if (r < 0)
                return fail(EXIT_USAGE, "%s could not compress the initramfs (package %s)", compress, compress), r;
        if ((r = file_size(output, &size)) < 0)
                return r;
        *ret_size = (size_t)size;
        return 0;
}

struct mkboot {
        const char *kernel_dir, *kernel, *init, *keyring, *output, *compress;
        const char *modules[64];
        size_t n_modules;
        struct uki uki;
};

/* The initramfs: mount points, the init, the keyring and, for a Debian
 * kernel, its modules (a kernel given by --kernel has its drivers built in
 * and gets no module list). */
static int add_boot_files(struct initramfs *ir, const struct mkboot *o, char version[static 128], size_t *ret_modules) {
        const char *dirs[] = {"dev", "proc", "sys", "imagefs", "etc/kos"};
        int r = 0;

        for (size_t i = 0; i < ELEMENTSOF(dirs) && r >= 0; i++)
                r = initramfs_add_dir(ir, dirs[i]);
        if (r >= 0 && (r = initramfs_add_file(ir, "init", o->init, 0755)) < 0)
                return fail(EXIT_USAGE, "cannot add the init %s: %s", o->init, strerror(-r)), r;
        if (r >= 0 && (r = initramfs_add_pem_dir(ir, KOS_IN_ARCHIVE(KOS_KEYRING_DIR), o->keyring)) < 0)
                return fail(EXIT_USAGE, "cannot add the keyring %s: %s", o->keyring,
                            r == -ENOKEY ? "no *.pem in it" : strerror(-r)), r;
        if (r >= 0 && o->kernel_dir)
                r = add_modules(ir, o->kernel_dir, o->modules, o->n_modules, version, ret_modules);
        return r;
}

static int build(const struct mkboot *o) {
        char version[128] = "(drivers built in)", path[PATH_MAX], vmlinuz[PATH_MAX], initramfs[PATH_MAX];
        size_t n_resolved = 0, size = 0;
        int r;

        struct initramfs *ir = initramfs_new();
        if (!ir)
                return fail(EXIT_USAGE, "out of memory");
        r = add_boot_files(ir, o, version, &n_resolved);
        if (o->kernel_dir)
                snprintf(vmlinuz, sizeof vmlinuz, "%s/boot/vmlinuz-%s", o->kernel_dir, version);
        else
                snprintf(vmlinuz, sizeof vmlinuz, "%s", o->kernel);
        if (r >= 0 && mkdir(o->output, 0755) < 0 && errno != EEXIST)
                r = -errno;
        snprintf(initramfs, sizeof initramfs, "%s/initramfs.img", o->output);
        if (r >= 0 && strcmp(o->compress, "lz4") == 0)
                r = write_compressed(ir, "lz4", initramfs, &size);
        else if (r >= 0)
                r = initramfs_write(ir, initramfs, &size);
        if (r < 0 && r != -ECHILD)
                fail(EXIT_USAGE, "cannot write %s: %s", initramfs, strerror(-r));
        initramfs_free(ir);
        if (r < 0)
                return EXIT_USAGE;
        snprintf(path, sizeof path, "%s/vmlinuz", o->output);
        if ((r = copy_file(vmlinuz, path)) < 0)
                return fail(EXIT_USAGE, "cannot copy %s: %s", vmlinuz, strerror(-r));
        printf("Boot Kernel %s: %s/vmlinuz, %s/initramfs.img (%s, %zu bytes, %zu modules)\n", version, o->output,
               o->output, o->compress, size, n_resolved);
        if (size > 4u << 20)
                fprintf(stderr, "kos: warning: the initramfs is larger than 4 MiB\n");
        if (!o->uki.output)
                return EXIT_OK;
        if ((r = write_uki(&o->uki, o->output, path, initramfs)) != EXIT_OK)
                return r;
        if (o->uki.has_security_version)
                printf("UKI: %s (%s, Boot Kernel security version %" PRIu32 ")\n", o->uki.output,
                       o->uki.sign_key ? "signed" : "unsigned", o->uki.security_version);
        else
                printf("UKI: %s (%s)\n", o->uki.output, o->uki.sign_key ? "signed" : "unsigned");
        return EXIT_OK;
}

static void mkboot_help(void) {
        printf("Usage: kos mkboot (--kernel-dir DIR | --kernel FILE) --keyring DIR --output DIR\n"
               "                  [--init FILE] [--module NAME]... [--compress gzip|lz4]\n"
               "                  [--uki FILE [--cmdline TEXT] [--stub FILE] [--osrel FILE]\n"
               "                   [--security-version N]\n"
               "                   [--sign-key KEY --sign-cert CERT]]\n\n"
               "Builds the Boot Kernel: OUTPUT/vmlinuz and OUTPUT/initramfs.img, a reproducible\n"
               "cpio holding the init (default: kos-boot-init beside kos) and the trusted\n"
               "keyring's *.pem files, compressed with gzip (default with --kernel-dir) or LZ4\n"
               "(legacy frame, lz4 -l; default with --kernel).\n"
               "  --kernel-dir DIR  a Debian kernel package unpacked with dpkg-deb -x (modules.dep\n"
               "                    made by depmod): its modules for an ext4 ImageFS on virtio\n"
               "                    (virtio_pci virtio_blk ext4 crc32c_generic, plus any --module)\n"
               "                    go in too, with their dependencies, in load order.\n"
               "  --kernel FILE     a kernel with its drivers built in (scripts/build-boot-kernel.sh):\n"
               "                    no modules.\n"
               "  --uki FILE        also a Unified Kernel Image: the systemd EFI stub (--stub,\n"
               "                    default " DEFAULT_STUB ")\n"
               "                    with the kernel, the initramfs, the command line (--cmdline,\n"
               "                    default \"" DEFAULT_UKI_CMDLINE "\") and an os-release;\n"
               "                    signed by sbsign with --sign-key/--sign-cert (the Secure Boot\n"
               "                    db key), unsigned without. Reproducible before signing.\n"
               "  --security-version N  the Boot Kernel security version (0 to 4294967295):\n"
               "                    " KOS_BK_SECURITY_VERSION_PARAM "=N goes last on the UKI's signed command\n"
               "                    line; the Boot Kernel measures it into PCR 14 and holds it\n"
               "                    against its floor (docs/trust-chain.md). Needs --uki.\n");
}

int cmd_mkboot(int argc, char **argv) {
        static const struct option options[] = {
                {"kernel-dir", required_argument, NULL, 'k'}, {"kernel", required_argument, NULL, 'K'},
                {"init", required_argument, NULL, 'i'},       {"keyring", required_argument, NULL, 'r'},
                {"output", required_argument, NULL, 'o'},     {"module", required_argument, NULL, 'm'},
                {"uki", required_argument, NULL, 'u'},        {"cmdline", required_argument, NULL, 'c'},
                {"stub", required_argument, NULL, 's'},       {"osrel", required_argument, NULL, 'O'},
                {"sign-key", required_argument, NULL, 'S'},   {"sign-cert", required_argument, NULL, 'C'},
                {"compress", required_argument, NULL, 'z'},   {"help", no_argument, NULL, 'h'},
                {"security-version", required_argument, NULL, 'V'},
                {}};
        struct mkboot o = {.uki = {.stub = DEFAULT_STUB, .cmdline = DEFAULT_UKI_CMDLINE}};
        char init[PATH_MAX];
        int c;

        program_beside_self("kos-boot-init", init, sizeof init);
        o.init = init;
        while ((c = getopt_long(argc, argv, "k:K:i:r:o:m:u:c:s:O:S:C:z:V:h", options, NULL)) >= 0) {
                switch (c) {
                case 'h': mkboot_help(); return EXIT_OK;
                case 'V': {
                        char word[64];
                        /* The same strict decimal the Boot Kernel accepts. */
                        snprintf(word, sizeof word, KOS_BK_SECURITY_VERSION_PARAM "=%s", optarg);
                        if (strlen(optarg) > 10 || kos_bk_security_version_from_cmdline(word, &o.uki.security_version) < 0)
                                return usage_error("mkboot", "--security-version must be an integer from 0 to %u, not '%s'",
                                                   UINT32_MAX, optarg);
                        o.uki.has_security_version = true;
                        break;
                }
                case 'k': o.kernel_dir = optarg; break;
                case 'K': o.kernel = optarg; break;
                case 'i': o.init = optarg; break;
                case 'r': o.keyring = optarg; break;
                case 'o': o.output = optarg; break;
                case 'u': o.uki.output = optarg; break;
                case 'c': o.uki.cmdline = optarg; break;
                case 's': o.uki.stub = optarg; break;
                case 'O': o.uki.osrel = optarg; break;
                case 'S': o.uki.sign_key = optarg; break;
                case 'C': o.uki.sign_cert = optarg; break;
                case 'z': o.compress = optarg; break;
                case 'm':
                        if (o.n_modules >= ELEMENTSOF(o.modules) - ELEMENTSOF(default_modules))
                                return usage_error("mkboot", "too many --module");
                        o.modules[o.n_modules++] = optarg;
                        break;
                default:
                        return usage_error("mkboot", "unknown option");
                }
        }
        if (!!o.kernel_dir == !!o.kernel || !o.keyring || !o.output || optind != argc)
                return usage_error("mkboot", "one of --kernel-dir or --kernel, and --keyring and --output are required");
        if (o.kernel && o.n_modules)
                return usage_error("mkboot", "--module needs --kernel-dir: a --kernel has its drivers built in");
        if (!!o.uki.sign_key != !!o.uki.sign_cert)
                return usage_error("mkboot", "--sign-key and --sign-cert go together");
        if (!o.uki.output && (o.uki.sign_key || o.uki.osrel || strcmp(o.uki.stub, DEFAULT_STUB) != 0 ||
                              strcmp(o.uki.cmdline, DEFAULT_UKI_CMDLINE) != 0))
                return usage_error("mkboot", "--sign-key, --cmdline, --stub and --osrel are for the UKI: give --uki");
        if (!o.uki.output && o.uki.has_security_version)
                return usage_error("mkboot", "--security-version is written into the UKI: give --uki");
        uint32_t ignored;
        if (kos_bk_security_version_from_cmdline(o.uki.cmdline, &ignored) != -ENOENT)
                return usage_error("mkboot", "give the Boot Kernel security version with --security-version, not in --cmdline");
        if (!o.compress)
                o.compress = o.kernel ? "lz4" : "gzip";
        if (strcmp(o.compress, "gzip") != 0 && strcmp(o.compress, "lz4") != 0)
                return usage_error("mkboot", "--compress takes gzip or lz4");
        if (o.kernel_dir)
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
        /* Node Manager's Boot Kernel slots: EFI variables and the ESP (vfat
         * with Debian's defaults: codepage 437, iocharset ascii, utf8). */
        "efivarfs", "vfat", "nls_cp437", "nls_ascii", "nls_utf8",
};

struct mkinitrd {
        const char *kernel_dir, *init, *keyring, *keystore, *output, *compress, *tpm_policy_key, *recovery_cert;
        const char *modules[64];
        size_t n_modules;
};

/* The vendor's policy key for signed PCR policies (docs/tpm.md, "Signed
 * policies"): a P-256 public key, checked here so a wrong file fails the
 * build, not the device's boot. */
static int add_tpm_policy_key(struct initramfs *ir, const char *path) {
        _cleanup_free_ char *pem = NULL;
        struct kos_tpm_ecc_point point;
        size_t len;
        int r = read_path(path, 4096, &pem, &len);

        if (r < 0 || kos_tpm_ecc_point_from_pem(pem, len, &point) < 0)
                return fail(EXIT_USAGE, "--tpm-policy-key %s: %s", path,
                            r < 0 ? file_error_string(r) : "not a NIST P-256 public key (PEM)"), -EINVAL;
        if ((r = initramfs_add_data(ir, KOS_IN_ARCHIVE(KOS_TPM_POLICY_KEY_PATH), pem, len, 0644)) < 0)
                return fail(EXIT_USAGE, "cannot add the TPM policy key: %s", strerror(-r)), r;
        return 0;
}

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
        /* e2fsck and resize2fs make room for the LUKS2 header when a plain
         * DataFS is encrypted in place (system/datafs-encrypt.h). */
        if ((r = initramfs_add_program(ir, "sbin/e2fsck", "/sbin/e2fsck")) < 0 ||
            (r = initramfs_add_program(ir, "sbin/resize2fs", "/sbin/resize2fs")) < 0)
                return fail(EXIT_USAGE, "cannot add /sbin/e2fsck and /sbin/resize2fs (e2fsprogs): %s", strerror(-r)), r;
        if (access("/etc/mke2fs.conf", R_OK) == 0 && (r = initramfs_add_file(ir, "etc/mke2fs.conf", "/etc/mke2fs.conf", 0644)) < 0)
                return r;
        if ((r = initramfs_add_pem_dir(ir, KOS_IN_ARCHIVE(KOS_KEYRING_DIR), o->keyring)) < 0)
                return fail(EXIT_USAGE, "cannot add the keyring %s: %s", o->keyring, r == -ENOKEY ? "no *.pem in it" : strerror(-r)), r;
        if (o->keystore && (r = initramfs_add_dir_files(ir, KOS_IN_ARCHIVE(KOS_INITRD_KEY_DIR), o->keystore, 0600)) < 0)
                return fail(EXIT_USAGE, "cannot add the key store %s: %s", o->keystore, strerror(-r)), r;
        if (o->tpm_policy_key && (r = add_tpm_policy_key(ir, o->tpm_policy_key)) < 0)
                return r;
        /* The vendor's DataFS recovery certificate (lib/system/datafs-recovery.h). */
        if (o->recovery_cert &&
            (r = initramfs_add_file(ir, KOS_IN_ARCHIVE(KOS_DATAFS_RECOVERY_CERT), o->recovery_cert, 0644)) < 0)
                return fail(EXIT_USAGE, "cannot add the recovery certificate %s: %s", o->recovery_cert, strerror(-r)), r;
        return 0;
}

int cmd_mkinitrd(int argc, char **argv) {
        static const struct option options[] = {
                {"kernel-dir", required_argument, NULL, 'k'}, {"init", required_argument, NULL, 'i'},
                {"keyring", required_argument, NULL, 'r'},    {"keystore", required_argument, NULL, 's'},
                {"output", required_argument, NULL, 'o'},     {"module", required_argument, NULL, 'm'},
                {"compress", required_argument, NULL, 'z'},   {"tpm-policy-key", required_argument, NULL, 'T'},
                {"recovery-cert", required_argument, NULL, 'R'}, {"help", no_argument, NULL, 'h'},
                {}};
        struct mkinitrd o = {.compress = "zstd"};
        char init[PATH_MAX], version[128];
        size_t n_modules = 0, size = 0;
        int c, r;

        program_beside_self("kos-system-init", init, sizeof init);
        o.init = init;
        while ((c = getopt_long(argc, argv, "k:i:r:s:o:m:z:hR:", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        printf("Usage: kos mkinitrd --kernel-dir DIR --keyring DIR [--keystore DIR]\n"
                               "                    --output FILE [--init FILE] [--module NAME]...\n"
                               "                    [--compress zstd|gzip] [--tpm-policy-key PUBLIC.pem]\n"
                               "                    [--recovery-cert CERT.pem]\n\n"
                               "Builds the System Kernel's initrd: kos-system-init (default: beside kos)\n"
                               "with the shared libraries it needs (resolved with ldd), mkfs.ext4 for\n"
                               "a first-boot DataFS, e2fsck and resize2fs for encrypting a plain one in\n"
                               "place, the keyring's *.pem, the key store's files (the\n"
                               "development key provider, /etc/kos/keys/<id>), and the modules for\n"
                               "loop, squashfs, erofs, ext4, overlay, dm-crypt, dm-verity, efivarfs and vfat\n"
                               "(the Boot Kernel's ESP slots) with their dependencies, and the vendor's\n"
                               "DataFS recovery certificate (--recovery-cert).\n"
                               "Compressed with zstd -19 (default; package zstd) or gzip -9.\n"
                               "Reproducible like 'kos mkboot'. --tpm-policy-key: the vendor's policy key\n"
                               "(kos tpm policy-key) for keys sealed to signed PCR policies.\n");
                        return EXIT_OK;
                case 'k': o.kernel_dir = optarg; break;
                case 'i': o.init = optarg; break;
                case 'r': o.keyring = optarg; break;
                case 's': o.keystore = optarg; break;
                case 'R': o.recovery_cert = optarg; break;
                case 'o': o.output = optarg; break;
                case 'z': o.compress = optarg; break;
                case 'T': o.tpm_policy_key = optarg; break;
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
        if (strcmp(o.compress, "zstd") != 0 && strcmp(o.compress, "gzip") != 0)
                return usage_error("mkinitrd", "--compress takes zstd or gzip");
        for (size_t i = 0; i < ELEMENTSOF(system_modules); i++)
                o.modules[o.n_modules++] = system_modules[i];

        struct initramfs *ir = initramfs_new();
        if (!ir)
                return fail(EXIT_USAGE, "out of memory");
        r = add_system_files(ir, &o);
        if (r >= 0)
                r = add_modules(ir, o.kernel_dir, o.modules, o.n_modules, version, &n_modules);
        if (r >= 0)
                r = strcmp(o.compress, "zstd") == 0 ? write_compressed(ir, "zstd", o.output, &size)
                                                     : initramfs_write(ir, o.output, &size);
        if (r < 0 && r != -ECHILD)
                fail(EXIT_USAGE, "cannot write %s: %s", o.output, strerror(-r));
        initramfs_free(ir);
        if (r < 0)
                return EXIT_USAGE;
        printf("System Kernel initrd for %s: %s (%s, %zu bytes, %zu modules)\n", version, o.output, o.compress, size,
               n_modules);
        return EXIT_OK;
}
