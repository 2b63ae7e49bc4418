/* SPDX-License-Identifier: MIT */
/* A block map for bmaptool (bmap-tools, format 2.0): which 4 KiB blocks of a
 * sparse image hold data, each range with its sha256, so `bmaptool copy`
 * writes only those blocks to a device and checks each one. The format is
 * bmap-tools' own (bmaptools/BmapCreate.py): the file's checksum is the
 * sha256 of the whole file written with that field all "0", then patched. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bmap.h"
#include "util.h"

#define BMAP_BLOCK 4096u
#define CHECKSUM_HEX 64

/* The next range [*first, *last] of mapped blocks at or after block from:
 * 0, -ENODATA at the end, or a negative errno. SEEK_DATA/SEEK_HOLE report
 * what the file system stores, rounded out to whole blocks. */
static int next_mapped_range(int fd, uint64_t from, uint64_t size, uint64_t *first, uint64_t *last) {
        off_t data = lseek(fd, (off_t)(from * BMAP_BLOCK), SEEK_DATA);
        if (data < 0)
                return errno == ENXIO ? -ENODATA : -errno;
        off_t hole = lseek(fd, data, SEEK_HOLE);
        if (hole < 0)
                return -errno;
        if ((uint64_t)hole > size)
                hole = (off_t)size;
        *first = (uint64_t)data / BMAP_BLOCK;
        *last = ((uint64_t)hole + BMAP_BLOCK - 1) / BMAP_BLOCK - 1;
        return 0;
}

static int hash_range(int fd, uint64_t first, uint64_t last, uint64_t size, char hex[static CHECKSUM_HEX + 1]) {
        static uint8_t buf[1 << 20];
        uint8_t digest[32];
        uint64_t pos = first * BMAP_BLOCK, end = (last + 1) * BMAP_BLOCK;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        int r = 0;

        if (end > size)
                end = size;
        if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
                r = -ENOMEM;
                goto out;
        }
        while (pos < end) {
                size_t want = end - pos < sizeof buf ? (size_t)(end - pos) : sizeof buf;
                ssize_t n = pread(fd, buf, want, (off_t)pos);
                if (n <= 0) {
                        r = n < 0 ? -errno : -EIO;
                        goto out;
                }
                EVP_DigestUpdate(ctx, buf, (size_t)n);
                pos += (uint64_t)n;
        }
        EVP_DigestFinal_ex(ctx, digest, NULL);
        kos_hex_encode(digest, sizeof digest, hex);
out:
        EVP_MD_CTX_free(ctx);
        return r;
}

/* The ranges, one <Range> line each, into out; counts the mapped blocks. */
static int write_ranges(int fd, uint64_t size, FILE *out, uint64_t *ret_mapped) {
        uint64_t blocks = (size + BMAP_BLOCK - 1) / BMAP_BLOCK, from = 0, first = 0, last = 0, mapped = 0;
        char hex[CHECKSUM_HEX + 1];
        int r = 0;

        while (from < blocks && (r = next_mapped_range(fd, from, size, &first, &last)) == 0) {
                r = hash_range(fd, first, last, size, hex);
                if (r < 0)
                        return r;
                if (first == last)
                        fprintf(out, "        <Range chksum=\"%s\"> %llu </Range>\n", hex, (unsigned long long)first);
                else
                        fprintf(out, "        <Range chksum=\"%s\"> %llu-%llu </Range>\n", hex, (unsigned long long)first,
                                (unsigned long long)last);
                mapped += last - first + 1;
                from = last + 1;
        }
        if (from < blocks && r != -ENODATA)
                return r;
        *ret_mapped = mapped;
        return 0;
}

/* The whole file into memory: the header needs the mapped count, which is
 * known only after the ranges are hashed, and the file checksum covers all. */
static int render(int fd, uint64_t size, char **ret, size_t *ret_len) {
        char *ranges = NULL, *doc = NULL;
        size_t ranges_len = 0, doc_len = 0;
        uint64_t mapped = 0;
        FILE *f = open_memstream(&ranges, &ranges_len);
        if (!f)
                return -ENOMEM;
        int r = write_ranges(fd, size, f, &mapped);
        if (fclose(f) != 0 && r == 0)
                r = -ENOMEM;
        if (r < 0) {
                free(ranges);
                return r;
        }
        f = open_memstream(&doc, &doc_len);
        if (!f) {
                free(ranges);
                return -ENOMEM;
        }
        fprintf(f,
                "<?xml version=\"1.0\" ?>\n<!-- Written by kos image; copy with: bmaptool copy IMAGE DEVICE -->\n"
                "<bmap version=\"2.0\">\n"
                "    <ImageSize> %llu </ImageSize>\n    <BlockSize> %u </BlockSize>\n"
                "    <BlocksCount> %llu </BlocksCount>\n    <MappedBlocksCount> %llu </MappedBlocksCount>\n"
                "    <ChecksumType> sha256 </ChecksumType>\n    <BmapFileChecksum> %0*d </BmapFileChecksum>\n"
                "    <BlockMap>\n%s    </BlockMap>\n</bmap>\n",
                (unsigned long long)size, BMAP_BLOCK, (unsigned long long)((size + BMAP_BLOCK - 1) / BMAP_BLOCK),
                (unsigned long long)mapped, CHECKSUM_HEX, 0, ranges ? ranges : "");
        free(ranges);
        if (fclose(f) != 0) {
                free(doc);
                return -ENOMEM;
        }
        *ret = doc;
        *ret_len = doc_len;
        return 0;
}

int kos_bmap_write(int image_fd, const char *bmap_path) {
        struct stat st;
        uint8_t digest[32];
        char hex[CHECKSUM_HEX + 1], *doc = NULL, *field;
        size_t len;

        if (fstat(image_fd, &st) < 0)
                return -errno;
        int r = render(image_fd, (uint64_t)st.st_size, &doc, &len);
        if (r < 0)
                return r;
        field = strstr(doc, "<BmapFileChecksum> ");
        if (!field || !EVP_Digest(doc, len, digest, NULL, EVP_sha256(), NULL)) {
                free(doc);
                return -EINVAL;
        }
        kos_hex_encode(digest, sizeof digest, hex);
        memcpy(field + strlen("<BmapFileChecksum> "), hex, CHECKSUM_HEX);
        r = kos_write_file_atomic_at(AT_FDCWD, bmap_path, doc, len, 0644);
        free(doc);
        return r;
}
