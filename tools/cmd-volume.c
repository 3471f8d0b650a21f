/* hyperfile admin command: the volume as a whole.
 *
 *   create, info, resize, delete, rekey
 *
 * Making, describing, resizing, deleting and rekeying one volume.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "crypt.h"
#include "history.h"
#include "lease.h"
#include "lineage.h"
#include "log.h"
#include "objstore.h"
#include "volume.h"
#include "tool.h"

int
hf_tool_create (const char *url)
{
  struct hf_objstore *s;
  char *prefix;
  int r;

  if (hf_tool_size == 0) {
    fprintf (stderr, "hyperfile: create: --size is required\n");
    return EXIT_USAGE;
  }
  if ((r = hf_tool_open_store (url, true, &s, &prefix)) != 0)
    return EXIT_FAILURE;
  r = hf_volume_create_codec (s, prefix, hf_tool_size, hf_tool_block_size,
                              hf_tool_have_ukey ? &hf_tool_ukey : NULL,
                              hf_tool_codec, hf_tool_codec_level);
  hf_objstore_close (s);
  free (prefix);
  if (r == EEXIST) {
    fprintf (stderr, "hyperfile: create: a volume already exists at %s\n",
             url);
    return EXIT_EXISTS;
  }
  if (r) {
    fprintf (stderr, "hyperfile: create: %s: %s\n", url, strerror (r));
    return EXIT_FAILURE;
  }
  if (hf_tool_create_silent)
    return EXIT_SUCCESS;
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "url", url);
    hf_j_u64 (o, "size", hf_tool_size);
    hf_j_bool (o, "created", true);
    hf_j_print (o, stdout);
  }
  else
    printf ("created %s (%" PRIu64 " bytes)\n", url, hf_tool_size);
  return EXIT_SUCCESS;
}

static int
hf_tool_info (const char *url)
{
  struct hf_volume_info vi;
  struct hf_vdesc d;
  struct hf_file *f;
  struct hf_objstore *s;
  struct hf_lease_info li;
  bool have_lease;
  uint64_t mapped_bytes = 0, mapped, now_ns, exp_ns = 0;
  char *prefix, uuid[33];
  int r, i;

  if ((r = hf_tool_store (url, &s, &prefix)) != 0)
    return r;
  r = hf_tool_reader_open (url, s, prefix, 0, &f);
  if (r) {
    hf_objstore_close (s);
    free (prefix);
    if (r == ENOENT) {
      fprintf (stderr, "hyperfile: info: no volume at %s\n", url);
      return EXIT_NOVOLUME;
    }
    fprintf (stderr, "hyperfile: info: %s: %s\n", url, strerror (r));
    return EXIT_FAILURE;
  }
  hf_volume_get_info (hf_file_volume (f), &vi);  /* uuid, head: the
                                                   engine's */
  for (i = 0; i < 16; i++)
    sprintf (uuid + 2 * i, "%02x", vi.uuid[i]);
  /* The blocks mapped at the head now: the index's count is as of the
   * last checkpoint, so walk the extents (index and the segments since
   * it, as a reader sees them). */
  r = hf_file_extents (f, vi.size, 0, hf_tool_count_mapped, &mapped_bytes);
  if (r == 0)
    /* The writer's lease (read beside it, never written). */
    r = hf_lease_newest (s, prefix, &have_lease, &li);
  if (r) {
    fprintf (stderr, "hyperfile: info: %s: %s\n", url, strerror (r));
    hf_file_close (f);
    hf_objstore_close (s);
    free (prefix);
    return EXIT_FAILURE;
  }
  mapped = (mapped_bytes + vi.block_size - 1) / vi.block_size;
  {
    struct timespec ts;

    clock_gettime (CLOCK_REALTIME, &ts);  /* leases hold wall time */
    now_ns = (uint64_t) ts.tv_sec * 1000000000 + (uint64_t) ts.tv_nsec;
  }
  if (have_lease)
    exp_ns = li.renewed_ns + (uint64_t) li.ttl_s * 1000000000;
  /* A clone says where it comes from. */
  if (hf_vdesc_read (s, prefix, &d) != 0)
    d.flags = 0;
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "url", url);
    hf_j_str (o, "uuid", uuid);
    hf_j_u64 (o, "size", vi.size);
    hf_j_u64 (o, "block_size", vi.block_size);
    hf_j_u64 (o, "head_seq", vi.head_seq);
    hf_j_u64 (o, "checkpoint_seq", vi.ckpt_seq);
    hf_j_u64 (o, "mapped_blocks", mapped);
    hf_j_u64 (o, "lease_epoch", have_lease ? li.epoch : 0);
    if (have_lease) {
      json_object *l = hf_j_obj ();

      hf_j_u64 (l, "epoch", li.epoch);
      hf_j_str (l, "holder", li.holder);
      hf_j_bool (l, "released", li.flags & HF_LS_RELEASED);
      hf_j_u64 (l, "renewed_ns", li.renewed_ns);
      hf_j_u64 (l, "ttl_s", li.ttl_s);
      json_object_object_add (l, "expires_in_s", hf_j_new
                              (json_object_new_int64
                               (((int64_t) exp_ns - (int64_t) now_ns)
                                / 1000000000)));
      json_object_object_add (o, "lease", l);
    }
    if (d.flags & HF_VD_CLONE) {
      hf_j_str (o, "clone_of", d.parent_url);
      hf_j_u64 (o, "base_seq", d.parent_seq);
      if (d.flags & HF_VD_FLATTENED)
        hf_j_u64 (o, "flattened_at", d.flat_seq);
    }
    hf_j_str (o, "compression", d.codec ? "zstd" : "none");
    if (d.codec)
      hf_j_i64 (o, "compression_level", d.codec_level);
    hf_j_str (o, "encryption", !(d.flags & HF_VD_ENCRYPTED) ? "none"
              : d.crypt.kdf == HF_VD_KDF_SCRYPT ? "aes-256-gcm, passphrase"
              : "aes-256-gcm, key file");
    hf_j_print (o, stdout);
  }
  else {
    printf ("url:            %s\n"
            "uuid:           %s\n"
            "size:           %" PRIu64 "\n"
            "block size:     %" PRIu32 "\n"
            "head segment:   %" PRIu64 "\n"
            "checkpoint:     %" PRIu64 "\n"
            "mapped blocks:  %" PRIu64 " (%" PRIu64 " bytes)\n",
            url, uuid, vi.size, vi.block_size, vi.head_seq, vi.ckpt_seq,
            mapped, mapped * vi.block_size);
    if (!have_lease)
      printf ("lease:          none (never opened by a writer)\n");
    else if (li.flags & HF_LS_RELEASED)
      printf ("lease:          epoch %" PRIu64 " released by %s\n",
              li.epoch, li.holder);
    else if (exp_ns > now_ns)
      printf ("lease:          epoch %" PRIu64 " held by %s, expires in %"
              PRIu64 " s unless renewed\n", li.epoch, li.holder,
              (exp_ns - now_ns) / 1000000000);
    else
      printf ("lease:          epoch %" PRIu64 " of %s expired %" PRIu64
              " s ago, not released (the writer died: a new one takes "
              "over with takeover=true)\n", li.epoch, li.holder,
              (now_ns - exp_ns) / 1000000000);
  }
  if (!hf_tool_json && (d.flags & HF_VD_CLONE))
    printf ("clone of:       %s at segment %" PRIu64 "\n", d.parent_url,
            d.parent_seq);
  if (!hf_tool_json && (d.flags & HF_VD_FLATTENED))
    printf ("flattened at segment %" PRIu64 " (the points since need "
            "nothing of the parent)\n", d.flat_seq);
  if (!hf_tool_json && d.codec)
    printf ("compression:    zstd level %d (16 KiB frames)\n",
            d.codec_level);
  if (!hf_tool_json && (d.flags & HF_VD_ENCRYPTED))
    printf ("encryption:     AES-256-GCM, data key wrapped with a %s\n",
            d.crypt.kdf == HF_VD_KDF_SCRYPT ? "passphrase (scrypt)"
            : "key file");
  hf_file_close (f);
  hf_objstore_close (s);
  free (prefix);
  return EXIT_SUCCESS;
}

int
hf_tool_delete_key (void *opaque, const char *key, uint64_t size)
{
  struct hf_tool_keys *k = opaque;

  if (k->n == k->cap) {
    size_t cap = k->cap ? 2 * k->cap : 1024;
    char **nk = realloc (k->keys, cap * sizeof *nk);

    if (nk == NULL)
      return ENOMEM;
    k->keys = nk;
    k->cap = cap;
  }
  if ((k->keys[k->n] = strdup (key)) == NULL)
    return ENOMEM;
  k->n++;
  k->bytes += size;
  return 0;
}

void
hf_tool_keys_restart (void *opaque)
{
  struct hf_tool_keys *k = opaque;

  while (k->n > 0)
    free (k->keys[--k->n]);
  k->bytes = 0;
}

/* Delete the volume at url: every object under its prefix, its
 * descriptor last (so that a delete that fails part-way leaves a volume
 * that fsck reports and a second delete finishes).  Refused while a
 * writer holds the lease, and while clones are registered unless
 * --force; a clone is first unregistered from its parent. */
int
hf_tool_delete (int argc, char **argv)
{
  const char *url = argv[0];
  struct hf_tool_keys k = { 0 };
  struct hf_clone_reg *cr = NULL;
  struct hf_objstore *s, *ps = NULL;
  struct hf_vdesc d;
  char *prefix, *pprefix = NULL, vkey[HF_OBJSTORE_KEY_MAX + 1];
  const char *unreg = NULL;
  size_t ncr = 0, i, done;
  double t0 = hf_tool_now ();
  int r, ret = EXIT_FAILURE;

  (void) argc;
  if ((r = hf_tool_store (url, &s, &prefix)) != 0)
    return r;
  r = hf_vdesc_read (s, prefix, &d);
  if (r) {
    ret = r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
    goto out;                   /* logged why */
  }
  if ((r = hf_lease_probe (s, prefix, hf_tool_takeover, false)) != 0) {
    ret = r == EBUSY ? EXIT_BUSY : EXIT_FAILURE;
    goto out;                   /* logged who holds it */
  }
  if ((r = hf_clone_reg_list (s, prefix, &cr, &ncr)) != 0)
    goto out;                   /* logged why */
  if (ncr > 0 && !hf_tool_force) {
    fprintf (stderr, "hyperfile: delete: %s has %zu clone(s) reading "
             "their older data from it:\n", url, ncr);
    for (i = 0; i < ncr; i++)
      fprintf (stderr, "  clone %s (base segment %" PRIu64 ")\n",
               cr[i].clone_url, cr[i].base_seq);
    fprintf (stderr, "delete them first, or add --force to delete it "
             "anyway (those clones then fail to read)\n");
    ret = EXIT_BUSY;
    goto out;
  }
  /* A clone: unregister it from its parent, which may then go. */
  if (d.flags & HF_VD_CLONE) {
    r = hf_objstore_open_url (d.parent_url, &hf_tool_s3, false, &ps,
                              &pprefix);
    if (r == 0)
      r = hf_clone_reg_delete (ps, pprefix, d.uuid);
    if (r == 0)
      unreg = d.parent_url;
    else if (r == ENOENT)
      fprintf (stderr, "hyperfile: delete: the parent %s is gone; nothing "
               "to unregister\n", d.parent_url);
    else {
      fprintf (stderr, "hyperfile: delete: could not unregister the clone "
               "from %s: %s; nothing deleted\n", d.parent_url,
               strerror (r));
      goto out;
    }
  }
  r = hf_objstore_list_retry (s, prefix, NULL, hf_tool_delete_key, &k,
                              hf_tool_keys_restart);
  if (r) {
    fprintf (stderr, "hyperfile: delete: listing %s: %s\n", url,
             strerror (r));
    goto out;
  }
  /* The descriptor last. */
  snprintf (vkey, sizeof vkey, "%svolume", prefix);
  for (i = 0; i < k.n; i++)
    if (strcmp (k.keys[i], vkey) == 0 && i + 1 < k.n) {
      char *t = k.keys[i];

      memmove (&k.keys[i], &k.keys[i + 1], (k.n - i - 1) * sizeof *k.keys);
      k.keys[k.n - 1] = t;
      break;
    }
  for (done = 0; done < k.n; ) {
    size_t b = k.n - done < 1000 ? k.n - done : 1000;

    r = hf_objstore_delete_many (s, (const char *const *) k.keys + done, b);
    if (r) {
      fprintf (stderr, "hyperfile: delete: %s: %s after %zu of %zu "
               "objects; run delete again to finish\n", url, strerror (r),
               done, k.n);
      goto out;
    }
    done += b;
    hf_tool_progress ("delete", done, k.n, t0, false);
  }
  hf_tool_progress ("delete", done, k.n, t0, true);
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "url", url);
    hf_j_u64 (o, "deleted_objects", k.n);
    hf_j_u64 (o, "deleted_bytes", k.bytes);
    json_object_object_add (o, "unregistered_from", unreg
                            ? hf_j_new (json_object_new_string (unreg))
                            : NULL);
    hf_j_u64 (o, "orphaned_clones", ncr);
    hf_j_print (o, stdout);
  }
  else
    printf ("deleted %s: %zu objects (%" PRIu64 " bytes)%s%s%s\n", url, k.n,
            k.bytes, unreg ? "; unregistered from its parent " : "",
            unreg ? unreg : "",
            ncr ? "; its clones can no longer read their base" : "");
  ret = EXIT_SUCCESS;
 out:
  for (i = 0; i < k.n; i++)
    free (k.keys[i]);
  free (k.keys);
  free (cr);
  hf_objstore_close (ps);
  free (pprefix);
  hf_objstore_close (s);
  free (prefix);
  return ret;
}

/* Resize the volume to SIZE (rounded up to whole blocks).  Through the
 * writer, so refused while another holds the lease; the new size is
 * committed in a segment of its own, so older points keep theirs.
 * Growing is always safe; shrinking drops the blocks past the new end
 * from the head, so it needs --force (without it: what would be lost,
 * and exit 2). */
int
hf_tool_resize (int argc, char **argv)
{
  const char *url = argv[0];
  struct hf_file *f;
  struct hf_objstore *s;
  uint64_t want, size, old;
  uint32_t bs;
  char *prefix;
  int r, ret = EXIT_SUCCESS;

  (void) argc;
  if (hf_tool_parse_size (argv[1], &want) == -1 || want == 0 ||
      want > HF_MAX_VOLUME_SIZE) {
    fprintf (stderr, "hyperfile: resize: SIZE '%s': expected a number of "
             "bytes from 1 to %" PRIu64 " with an optional K, M, G, T, P "
             "suffix\n", argv[1], HF_MAX_VOLUME_SIZE);
    return EXIT_USAGE;
  }
  if ((r = hf_tool_store (url, &s, &prefix)) != 0)
    return r;
  if ((r = hf_tool_writer_open (url, s, prefix, HF_TOOL_W_BATCH, &f)) != 0) {
    hf_objstore_close (s);
    free (prefix);
    if (r == EXIT_NOVOLUME)
      fprintf (stderr, "hyperfile: resize: no volume at %s\n", url);
    return r;                   /* the volume said why */
  }
  old = hf_file_size (f);
  bs = hf_file_block_size (f);
  size = (want + bs - 1) / bs * bs;
  if (size > HF_MAX_VOLUME_SIZE)
    size -= bs;                 /* the largest whole size (a multiple) */
  if (size < old) {
    uint64_t lost = 0;

    r = hf_file_extents (f, old - size, size, hf_tool_count_mapped, &lost);
    if (r) {
      fprintf (stderr, "hyperfile: resize: %s: %s\n", url, strerror (r));
      ret = EXIT_FAILURE;
    }
    else if (!hf_tool_force) {
      fprintf (stderr, "hyperfile: resize: shrinking %s from %" PRIu64
               " to %" PRIu64 " bytes drops the last %" PRIu64 " bytes "
               "from the head, %" PRIu64 " of them data; they stay "
               "readable at the older points (hyperfile ls, export --at) "
               "until gc.  Add --force to shrink\n", url, old, size,
               old - size, lost);
      ret = EXIT_USAGE;
    }
    /* The engine's: hf_file_resize only grows. */
    else if ((r = hf_volume_shrink (hf_file_volume (f), size)) != 0) {
      fprintf (stderr, "hyperfile: resize: shrinking %s: %s\n", url,
               strerror (r));
      ret = EXIT_FAILURE;
    }
    else
      fprintf (stderr, "hyperfile: resize: dropped the last %" PRIu64
               " bytes (%" PRIu64 " of them data) from the head of %s\n",
               old - size, lost, url);
  }
  else if (size > old && (r = hf_file_resize (f, size)) != 0) {
    fprintf (stderr, "hyperfile: resize: %s: %s\n", url, strerror (r));
    ret = EXIT_FAILURE;
  }
  /* The close commits the new size (and waits for it). */
  if (hf_file_close (f) != 0 && ret == EXIT_SUCCESS)
    ret = EXIT_FAILURE;
  hf_objstore_close (s);
  free (prefix);
  if (ret)
    return ret;
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "url", url);
    hf_j_u64 (o, "old_size", old);
    hf_j_u64 (o, "size", size);
    hf_j_print (o, stdout);
  }
  else if (size == old)
    printf ("%s is already %" PRIu64 " bytes\n", url, size);
  else
    printf ("resized %s: %" PRIu64 " -> %" PRIu64 " bytes\n", url, old,
            size);
  return EXIT_SUCCESS;
}

/* The command table's functions for create and info. */
int
hf_tool_cmd_create (int argc, char **argv)
{
  (void) argc;
  return hf_tool_create (argv[0]);
}

int
hf_tool_cmd_info (int argc, char **argv)
{
  (void) argc;
  return hf_tool_info (argv[0]);
}

/* rekey URL: rewrap the data key from the key to the new key. */
int
hf_tool_rekey (int argc, char **argv)
{
  const char *url = argv[0];
  struct hf_objstore *s;
  char *prefix;
  bool have_new;
  int r;

  (void) argc;
  if (!hf_tool_have_ukey ||
      hf_tool_load_key (hf_tool_new_key_file, hf_tool_new_key_pass,
                        "new-key", &hf_tool_new_ukey, &have_new) != 0 ||
      !have_new) {
    fprintf (stderr, "hyperfile: rekey: give the current key (--key-file "
             "or --key) and the new one (--new-key-file or --new-key)\n");
    return EXIT_USAGE;
  }
  /* Opening checks the current key. */
  if ((r = hf_tool_store (url, &s, &prefix)) != 0)
    return r;
  r = hf_crypt_rekey (s, prefix, &hf_tool_ukey, &hf_tool_new_ukey);
  hf_objstore_close (s);
  free (prefix);
  if (r)
    return r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;   /* logged why */
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "url", url);
    hf_j_bool (o, "rekeyed", true);
    hf_j_print (o, stdout);
  }
  else
    printf ("rekeyed %s: its data key is now wrapped with the new %s\n",
            url, hf_tool_new_ukey.kdf == HF_VD_KDF_SCRYPT ? "passphrase"
            : "key file");
  return EXIT_SUCCESS;
}
