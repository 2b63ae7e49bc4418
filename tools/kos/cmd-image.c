/* SPDX-License-Identifier: MIT */
/* kos image: a device's factory disk image, written to a file or a block
 * device. The layout (docs/format.md, "The disk"):
 *
 *   GPT  1. "EFI system"   vfat KOS-ESP, the signed Boot Kernel UKI as
 *                          \EFI\BOOT\BOOTX64.EFI and \EFI\KOS\SLOT-A.EFI
 *                          (with --uki / --esp-dir)
 *        2. "kos-imagefs"  ext4 KOS-IMAGEFS, from an ImageFS directory
 *        3. "KOS-DATA"     the DataFS: empty (the System Kernel formats it
 *                          at first boot) or ext4 KOS-DATA (--data-format)
 *
 * Each partition starts on a MiB. The partition table is written with
 * libfdisk; the file systems by the tools made for them (mkfs.vfat and
 * mtools, mkfs.ext4 -d), run without a shell, straight into the image at the
 * partition's offset, so nothing is mounted and no loop device is needed.
 * A file is written beside OUTPUT and renamed over it only when complete. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <libfdisk/libfdisk.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bmap.h"
#include "kos.h"
#include "layout.h"
#include "util.h"

#define MIB ((uint64_t)1 << 20)
#define GPT_TYPE_ESP "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
#define GPT_TYPE_LINUX "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
#define ESP_MIN_MIB 34 /* what mkfs.vfat needs for FAT32 with 512-byte sectors */
#define ESP_VOLUME_ID "4b05e5f0"
#define MAX_MIB ((uint64_t)16 << 20) /* 16 TiB: far above any device, below every overflow */

enum part_kind { PART_ESP, PART_IMAGEFS, PART_DATA, PART_COUNT };

struct image_options {
        const char *output, *imagefs_dir, *imagefs_uuid, *imagefs_label, *uki, *esp_dir, *bmap;
        uint64_t imagefs_mib, imagefs_extra_mib, esp_mib, data_mib;
        bool data_format, force;
};

struct partition {
        const char *name, *type;
        uint64_t start_mib, size_mib; /* size 0: not on this disk */
};

static const char *const part_names[PART_COUNT] = {"EFI system", "kos-imagefs", KOS_LABEL_DATA};
static const char *const part_types[PART_COUNT] = {GPT_TYPE_ESP, GPT_TYPE_LINUX, GPT_TYPE_LINUX};

/* "N", "NK", "NM", "NG" (binary units) into whole MiB, rounded up. */
static int parse_mib(const char *arg, uint64_t *ret) {
        char *end;
        unsigned shift = 0;

        errno = 0;
        unsigned long long v = strtoull(arg, &end, 10);
        if (errno || end == arg || arg[0] == '-')
                return -EINVAL;
        switch (*end) {
        case 'K': shift = 10; end++; break;
        case 'M': shift = 20; end++; break;
        case 'G': shift = 30; end++; break;
        case '\0': break;
        default: return -EINVAL;
        }
        if (*end || v > (MAX_MIB << 20) >> shift)
                return -EINVAL;
        *ret = ((v << shift) + MIB - 1) / MIB;
        return 0;
}

/* What a tree takes on a file system: each entry a 4 KiB block at least.
 * nftw() passes no user data, hence the file-scope sum. */
static uint64_t tree_bytes;
static int add_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        tree_bytes += ((uint64_t)st->st_size + 4095) / 4096 * 4096 + 4096;
        return tree_bytes > (MAX_MIB << 20);
}

static int tree_mib(const char *dir, uint64_t *ret) {
        tree_bytes = 0;
        if (nftw(dir, add_entry, 32, FTW_PHYS) != 0)
                return errno ? -errno : -EFBIG;
        *ret = (tree_bytes + MIB - 1) / MIB;
        return 0;
}

static int file_mib(const char *path, uint64_t *ret) {
        struct stat st;
        if (stat(path, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        *ret = ((uint64_t)st.st_size + MIB - 1) / MIB;
        return 0;
}

/* Sizes and places of the partitions; the disk's size in MiB. */
static int plan_layout(const struct image_options *o, struct partition parts[static PART_COUNT], uint64_t *ret_mib) {
        uint64_t mib = 0, next = 1; /* the GPT and the first MiB */
        int r;

        for (int i = 0; i < PART_COUNT; i++)
                parts[i] = (struct partition){.name = part_names[i], .type = part_types[i]};
        if (o->uki || o->esp_dir) {
                uint64_t content = 0;
                if (o->esp_dir && (r = tree_mib(o->esp_dir, &content)) < 0)
                        return fail(EXIT_USAGE, "cannot read the ESP directory %s: %s", o->esp_dir, strerror(-r));
                if (o->uki && (r = file_mib(o->uki, &mib)) < 0)
                        return fail(EXIT_USAGE, "cannot read the UKI %s: %s", o->uki, file_error_string(r));
                content += o->uki ? mib : 0;
                parts[PART_ESP].size_mib = o->esp_mib ? o->esp_mib : content + 8;
                if (parts[PART_ESP].size_mib < ESP_MIN_MIB)
                        parts[PART_ESP].size_mib = ESP_MIN_MIB;
        }
        if ((r = tree_mib(o->imagefs_dir, &mib)) < 0)
                return fail(EXIT_USAGE, "cannot read the ImageFS directory %s: %s", o->imagefs_dir, strerror(-r));
        /* Room for ext4's own metadata and the tree's growth by updates. */
        parts[PART_IMAGEFS].size_mib = o->imagefs_mib ? o->imagefs_mib : mib * 3 / 2 + 16 + o->imagefs_extra_mib;
        parts[PART_DATA].size_mib = o->data_mib;
        for (int i = 0; i < PART_COUNT; i++) {
                parts[i].start_mib = next;
                next += parts[i].size_mib;
        }
        *ret_mib = next + 1; /* the backup GPT */
        return *ret_mib > MAX_MIB ? fail(EXIT_USAGE, "the disk would be larger than 16 TiB") : EXIT_OK;
}

static int write_partition_table(const char *target, const struct partition parts[static PART_COUNT]) {
        struct fdisk_context *cxt = fdisk_new_context();
        int r = cxt ? fdisk_assign_device(cxt, target, 0) : -ENOMEM;

        if (r == 0)
                r = fdisk_create_disklabel(cxt, "gpt");
        for (int i = 0; r == 0 && i < PART_COUNT; i++) {
                if (parts[i].size_mib == 0)
                        continue;
                struct fdisk_partition *pa = fdisk_new_partition();
                struct fdisk_parttype *type = fdisk_label_parse_parttype(fdisk_get_label(cxt, "gpt"), parts[i].type);
                if (!pa || !type)
                        r = -ENOMEM;
                if (r == 0)
                        r = fdisk_partition_set_start(pa, parts[i].start_mib * (MIB / 512));
                if (r == 0)
                        r = fdisk_partition_set_size(pa, parts[i].size_mib * (MIB / 512));
                if (r == 0)
                        r = fdisk_partition_partno_follow_default(pa, 1);
                if (r == 0)
                        r = fdisk_partition_set_type(pa, type);
                if (r == 0)
                        r = fdisk_partition_set_name(pa, parts[i].name);
                if (r == 0)
                        r = fdisk_add_partition(cxt, pa, NULL);
                fdisk_unref_partition(pa);
                fdisk_unref_parttype(type);
        }
        if (r == 0)
                r = fdisk_write_disklabel(cxt);
        if (cxt) {
                int d = fdisk_deassign_device(cxt, 0); /* fsyncs; a block device re-reads its table */
                if (r == 0)
                        r = d;
                fdisk_unref_context(cxt);
        }
        return r < 0 ? r : 0;
}

/* Each entry of dir into the ESP's root, folders with all they hold. */
static int copy_esp_dir(const char *image, const char *dir) {
        struct dirent **entries = NULL;
        int n = scandir(dir, &entries, NULL, alphasort), r = n < 0 ? -errno : 0;

        for (int i = 0; i < n; i++) {
                char src[PATH_MAX];
                const char *name = entries[i]->d_name;
                if (r == 0 && strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
                        if ((size_t)snprintf(src, sizeof src, "%s/%s", dir, name) >= sizeof src)
                                r = -ENAMETOOLONG;
                        char *copy[] = {"mcopy", "-s", "-Q", "-i", (char *)image, src, "::/", NULL};
                        if (r == 0)
                                r = run_program(copy, NULL, 0);
                }
                free(entries[i]);
        }
        free(entries);
        return r;
}

static int make_esp(const char *target, const struct image_options *o, const struct partition *p) {
        char offset[32], blocks[32], image[PATH_MAX];

        snprintf(offset, sizeof offset, "--offset=%" PRIu64, p->start_mib * (MIB / 512));
        snprintf(blocks, sizeof blocks, "%" PRIu64, p->size_mib * 1024);
        if ((size_t)snprintf(image, sizeof image, "%s@@%" PRIu64, target, p->start_mib * MIB) >= sizeof image)
                return -ENAMETOOLONG;
        /* FAT32, as UEFI asks of an ESP, with one sector a cluster: left to
         * itself, mkfs.vfat sizes clusters for the whole device it is given
         * (the disk, not the partition) and refuses a small ESP. */
        char *mkfs[] = {"mkfs.vfat", offset, "-F", "32", "-s", "1", "-n", "KOS-ESP", "-i", ESP_VOLUME_ID, (char *)target,
                        blocks, NULL};
        int r = run_program(mkfs, NULL, 0);
        if (r < 0)
                return fail(EXIT_USAGE, "mkfs.vfat failed for the ESP"), r;
        if (o->esp_dir && (r = copy_esp_dir(image, o->esp_dir)) < 0)
                return fail(EXIT_USAGE, "mcopy failed for %s", o->esp_dir), r;
        if (o->uki) {
                /* mmd fails on a folder --esp-dir already made: then only the copy must work. */
                char *mkdir_efi[] = {"mmd", "-D", "s", "-i", image, "::/EFI", "::/EFI/BOOT", "::/EFI/KOS", NULL};
                (void)run_program(mkdir_efi, NULL, 0);
                /* The removable path, which the firmware boots while it has no
                 * entry of ours, and Boot Kernel slot A, which Node Manager
                 * makes the default on the first boot marked good; slot B
                 * stays empty until a release brings a new UKI
                 * (docs/trust-chain.md, "Boot Kernel updates"). */
                char *copy[] = {"mcopy", "-D", "o", "-i", image, (char *)o->uki, "::/EFI/BOOT/BOOTX64.EFI", NULL};
                char *copy_slot[] = {"mcopy", "-D", "o", "-i", image, (char *)o->uki, "::/EFI/KOS/SLOT-A.EFI", NULL};
                if ((r = run_program(copy, NULL, 0)) < 0 || (r = run_program(copy_slot, NULL, 0)) < 0)
                        return fail(EXIT_USAGE, "mcopy failed for the UKI %s", o->uki), r;
        }
        return 0;
}

static int make_ext4(const char *target, const struct partition *p, const char *label, const char *uuid, const char *dir) {
        char ext[64], size[32];
        char *argv[16];
        int n = 0;

        snprintf(ext, sizeof ext, "root_owner=0:0,offset=%" PRIu64, p->start_mib * MIB);
        snprintf(size, sizeof size, "%" PRIu64 "M", p->size_mib);
        argv[n++] = "mkfs.ext4";
        argv[n++] = "-q";
        argv[n++] = "-F";
        argv[n++] = "-L";
        argv[n++] = (char *)label;
        if (uuid) {
                argv[n++] = "-U";
                argv[n++] = (char *)uuid;
        }
        if (dir) {
                argv[n++] = "-d";
                argv[n++] = (char *)dir;
        }
        argv[n++] = "-E";
        argv[n++] = ext;
        argv[n++] = (char *)target;
        argv[n++] = size;
        argv[n] = NULL;
        int r = run_program(argv, NULL, 0);
        return r < 0 ? (fail(EXIT_USAGE, "mkfs.ext4 failed for the %s partition", p->name), r) : 0;
}

/* A regular file is made anew beside the output; a block device is written
 * in place, and only when nothing holds it (O_EXCL: not mounted). */
static int prepare_target(const struct image_options *o, uint64_t disk_mib, char *tmp, size_t tmp_size, bool *ret_device) {
        struct stat st;
        bool exists = stat(o->output, &st) == 0;

        *ret_device = exists && S_ISBLK(st.st_mode);
        if (exists && !o->force)
                return fail(EXIT_USAGE, "%s exists; --force writes over it", o->output);
        if (*ret_device) {
                uint64_t bytes = 0;
                int fd = open(o->output, O_RDONLY | O_EXCL | O_CLOEXEC);
                if (fd < 0)
                        return fail(EXIT_USAGE, "cannot open %s exclusively (mounted or in use?): %m", o->output);
                int r = ioctl(fd, BLKGETSIZE64, &bytes);
                close(fd);
                if (r < 0 || bytes < disk_mib * MIB)
                        return fail(EXIT_USAGE, "%s holds %" PRIu64 " MiB; the image needs %" PRIu64 " MiB", o->output,
                                    bytes / MIB, disk_mib);
                snprintf(tmp, tmp_size, "%s", o->output);
                return EXIT_OK;
        }
        if (exists && !S_ISREG(st.st_mode))
                return fail(EXIT_USAGE, "%s is neither a regular file nor a block device", o->output);
        if ((size_t)snprintf(tmp, tmp_size, "%s.partial", o->output) >= tmp_size)
                return fail(EXIT_USAGE, "%s: path too long", o->output);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
                return fail(EXIT_USAGE, "cannot create %s: %m", tmp);
        int r = ftruncate(fd, (off_t)(disk_mib * MIB));
        close(fd);
        return r < 0 ? fail(EXIT_USAGE, "cannot size %s: %m", tmp) : EXIT_OK;
}

/* fsync the image and, for a file, put it in place. */
static int finish_target(const struct image_options *o, const char *tmp, bool device) {
        int fd = open(tmp, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0) {
                int e = errno;
                if (fd >= 0)
                        close(fd);
                return -e;
        }
        close(fd);
        if (!device && rename(tmp, o->output) < 0)
                return -errno;
        return 0;
}

static int write_image(const struct image_options *o, const struct partition parts[static PART_COUNT], const char *target) {
        int r;

        fprintf(stderr, "kos image: partition table\n");
        if ((r = write_partition_table(target, parts)) < 0)
                return fail(EXIT_USAGE, "cannot write the partition table to %s: %s", target, strerror(-r));
        if (parts[PART_ESP].size_mib) {
                fprintf(stderr, "kos image: EFI system partition, %" PRIu64 " MiB\n", parts[PART_ESP].size_mib);
                if (make_esp(target, o, &parts[PART_ESP]) < 0)
                        return EXIT_USAGE;
        }
        fprintf(stderr, "kos image: ImageFS from %s, %" PRIu64 " MiB\n", o->imagefs_dir, parts[PART_IMAGEFS].size_mib);
        if (make_ext4(target, &parts[PART_IMAGEFS], o->imagefs_label, o->imagefs_uuid, o->imagefs_dir) < 0)
                return EXIT_USAGE;
        if (parts[PART_DATA].size_mib) {
                fprintf(stderr, "kos image: DataFS, %" PRIu64 " MiB, %s\n", parts[PART_DATA].size_mib,
                        o->data_format ? "ext4" : "left empty (formatted at first boot)");
                if (o->data_format && make_ext4(target, &parts[PART_DATA], KOS_LABEL_DATA, NULL, NULL) < 0)
                        return EXIT_USAGE;
        }
        return EXIT_OK;
}

static int image_help(void) {
        printf("Usage: kos image --imagefs DIR [OPTIONS] OUTPUT\n\n"
               "Write a device's factory disk image to OUTPUT, a file or a block device: a GPT with\n"
               "the EFI system partition (the signed Boot Kernel UKI as \\EFI\\BOOT\\BOOTX64.EFI\n"
               "and as Boot Kernel slot A, \\EFI\\KOS\\SLOT-A.EFI),\n"
               "the ImageFS made from DIR, and the DataFS partition (docs/format.md, \"The disk\").\n\n"
               "  --imagefs DIR          the ImageFS tree (kos imagefs init, install, activate)\n"
               "  --imagefs-size SIZE    its partition's size (default: 1.5 x the tree + 16M)\n"
               "  --imagefs-extra SIZE   room added to the default size for updates\n"
               "  --imagefs-uuid UUID    its ext4 UUID (default: random); kos.imagefs=UUID=... names it\n"
               "  --imagefs-label LABEL  its ext4 label (default: " KOS_LABEL_IMAGEFS ")\n"
               "  --uki FILE             the signed Boot Kernel UKI (kos mkboot --uki): adds the ESP\n"
               "  --esp-dir DIR          more files for the ESP, copied as they are\n"
               "  --esp-size SIZE        the ESP's size (default: its files + 8M, at least 34M)\n"
               "  --data-size SIZE       a DataFS partition named " KOS_LABEL_DATA " (default: none)\n"
               "  --data-format          format it as ext4 now (default: the System Kernel formats it)\n"
               "  --bmap FILE            also write a block map: bmaptool copy --bmap FILE OUTPUT DEVICE\n"
               "  --force                write over an existing OUTPUT\n\n"
               "SIZE is a number of bytes with an optional K, M or G; partitions are whole MiB.\n"
               "Needs mkfs.ext4 (e2fsprogs) and, for the ESP, mkfs.vfat and mtools.\n");
        return EXIT_OK;
}

static int parse_image_options(int argc, char **argv, struct image_options *o) {
        static const struct option options[] = {
                {"imagefs", required_argument, NULL, 'i'},      {"imagefs-size", required_argument, NULL, 's'},
                {"imagefs-extra", required_argument, NULL, 'x'}, {"imagefs-uuid", required_argument, NULL, 'U'},
                {"imagefs-label", required_argument, NULL, 'L'}, {"uki", required_argument, NULL, 'u'},
                {"esp-dir", required_argument, NULL, 'e'},      {"esp-size", required_argument, NULL, 'E'},
                {"data-size", required_argument, NULL, 'd'},    {"data-format", no_argument, NULL, 'D'},
                {"bmap", required_argument, NULL, 'b'},         {"force", no_argument, NULL, 'f'},
                {"help", no_argument, NULL, 'h'},               {}};
        int c;

        *o = (struct image_options){.imagefs_label = KOS_LABEL_IMAGEFS};
        while ((c = getopt_long(argc, argv, "i:s:x:U:L:u:e:E:d:Db:fh", options, NULL)) >= 0) {
                uint64_t *size = NULL;
                switch (c) {
                case 'i': o->imagefs_dir = optarg; break;
                case 's': size = &o->imagefs_mib; break;
                case 'x': size = &o->imagefs_extra_mib; break;
                case 'U': o->imagefs_uuid = optarg; break;
                case 'L': o->imagefs_label = optarg; break;
                case 'u': o->uki = optarg; break;
                case 'e': o->esp_dir = optarg; break;
                case 'E': size = &o->esp_mib; break;
                case 'd': size = &o->data_mib; break;
                case 'D': o->data_format = true; break;
                case 'b': o->bmap = optarg; break;
                case 'f': o->force = true; break;
                case 'h': return image_help(), -1;
                default: return usage_error("image", "unknown option");
                }
                if (size && parse_mib(optarg, size) < 0)
                        return usage_error("image", "%s is not a size (a number with K, M or G)", optarg);
        }
        if (optind + 1 != argc)
                return usage_error("image", "name one OUTPUT, a file or a block device");
        o->output = argv[optind];
        if (!o->imagefs_dir)
                return usage_error("image", "--imagefs DIR is required");
        if (o->data_format && !o->data_mib)
                return usage_error("image", "--data-format needs --data-size");
        return EXIT_OK;
}

int cmd_image(int argc, char **argv) {
        struct image_options o;
        struct partition parts[PART_COUNT];
        char target[PATH_MAX];
        uint64_t disk_mib = 0;
        bool device;
        int r = parse_image_options(argc, argv, &o);

        if (r != EXIT_OK)
                return r < 0 ? EXIT_OK : r;
        if ((r = plan_layout(&o, parts, &disk_mib)) != EXIT_OK)
                return r;
        if ((r = prepare_target(&o, disk_mib, target, sizeof target, &device)) != EXIT_OK)
                return r;
        if (device && o.bmap)
                return fail(EXIT_USAGE, "--bmap maps an image file, not a block device");
        if ((r = write_image(&o, parts, target)) != EXIT_OK || (r = finish_target(&o, target, device)) < 0) {
                if (!device)
                        unlink(target);
                return r < 0 ? fail(EXIT_USAGE, "cannot finish %s: %s", o.output, strerror(-r)) : r;
        }
        if (o.bmap) {
                int fd = open(o.output, O_RDONLY | O_CLOEXEC);
                r = fd < 0 ? -errno : kos_bmap_write(fd, o.bmap);
                if (fd >= 0)
                        close(fd);
                if (r < 0)
                        return fail(EXIT_USAGE, "cannot write the block map %s: %s", o.bmap, strerror(-r));
        }
        printf("wrote %s: %" PRIu64 " MiB (ESP %" PRIu64 ", ImageFS %" PRIu64 ", DataFS %" PRIu64 " MiB)\n", o.output, disk_mib,
               parts[PART_ESP].size_mib, parts[PART_IMAGEFS].size_mib, parts[PART_DATA].size_mib);
        return EXIT_OK;
}
