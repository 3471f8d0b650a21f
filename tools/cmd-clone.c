/* hyperfile admin command: clones.
 *
 *   clone, children, flatten
 *
 * Making a clone of a point, listing (and pruning) the clones a volume
 * has registered, and making a clone independent of its parent.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "crypt.h"
#include "file-int.h"
#include "gc.h"
#include "history.h"
#include "lineage.h"
#include "log.h"
#include "objstore.h"
#include "volume.h"
#include "tool.h"

/* clone SRC[@POINT] DST: hf_file_clone's implementation
 * (hf_file_clone_ext), with the store options and the key; each step
 * it can stop at has its exit code. */
int
hf_tool_clone (int argc, char **argv)
{
  char *src = strdup (argv[0]), *at, *src_abs = NULL, *dst_abs = NULL;
  const char *dst = argv[1];
  enum hf_file_clone_step step;
  uint64_t base = 0;
  int r, ret = EXIT_FAILURE;

  (void) argc;
  if (src == NULL)
    return EXIT_FAILURE;
  /* SRC@POINT: the last '@' (S3 keys and paths rarely hold one). */
  at = strrchr (src, '@');
  if (at)
    *at++ = '\0';
  r = hf_file_clone_ext (src, at, dst, &hf_tool_s3,
                         hf_tool_have_ukey ? &hf_tool_ukey : NULL, &step,
                         &base);
  if (r) {                      /* logged why, but for the cases below */
    switch (step) {
    case HF_FILE_CLONE_ARGS:
      ret = EXIT_USAGE;
      break;
    case HF_FILE_CLONE_PARENT_STORE:
      ret = r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
      break;
    case HF_FILE_CLONE_PARENT:
      if (r == ENOENT)
        fprintf (stderr, "hyperfile: clone: no volume at %s\n", src);
      else
        fprintf (stderr, "hyperfile: clone: %s: %s\n", src, strerror (r));
      ret = r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
      break;
    case HF_FILE_CLONE_RESOLVE:
      if (r != EINVAL && r != ENOENT)
        fprintf (stderr, "hyperfile: clone: resolving %s: %s\n", at,
                 strerror (r));
      ret = r == EINVAL || r == ENOENT ? EXIT_NOPOINT : EXIT_FAILURE;
      break;
    case HF_FILE_CLONE_POINT:
      ret = EXIT_NOPOINT;
      break;
    case HF_FILE_CLONE_TARGET:
      ret = EXIT_FAILURE;
      break;
    case HF_FILE_CLONE_SAME:
      fprintf (stderr, "hyperfile: clone: source and destination are the "
               "same volume\n");
      ret = EXIT_USAGE;
      break;
    case HF_FILE_CLONE_CREATE:
      ret = r == EEXIST ? EXIT_EXISTS : r == EINVAL ? EXIT_NOPOINT
        : EXIT_FAILURE;
      break;
    }
    goto out;
  }
  /* Both exist now: their URLs as the clone records them. */
  src_abs = hf_objstore_abs_url (src);
  dst_abs = hf_objstore_abs_url (dst);
  if (src_abs == NULL || dst_abs == NULL)
    goto out;                   /* logged */
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "source", src_abs);
    hf_j_str (o, "clone", dst_abs);
    hf_j_u64 (o, "base_seq", base);
    hf_j_print (o, stdout);
  }
  else
    printf ("cloned %s at segment %" PRIu64 " as %s\n", src_abs, base,
            dst_abs);
  ret = EXIT_SUCCESS;

 out:
  free (src_abs);
  free (dst_abs);
  free (src);
  return ret;
}

/* The clones registered on the volume, each checked: "ok", or an orphan
 * ("gone": nothing at its URL; "replaced": another volume there), or
 * "unknown" (could not be read; a warning says why).  --prune deletes
 * the orphans' registrations (never one that could not be checked), so
 * that gc may collect what they kept. */
int
hf_tool_children (int argc, char **argv)
{
  const char *url = argv[0];
  struct hf_clone_reg *cr = NULL;
  struct hf_objstore *s;
  json_object *a = NULL;
  size_t n = 0, i, pruned = 0, orphans = 0;
  char *prefix;
  int r, ret = EXIT_FAILURE;

  (void) argc;
  if ((r = hf_tool_store (url, &s, &prefix)) != 0)
    return r;
  {
    struct hf_vdesc d;

    if ((r = hf_vdesc_read (s, prefix, &d)) != 0) {
      ret = r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
      goto out;                 /* logged why */
    }
  }
  if (hf_clone_reg_list (s, prefix, &cr, &n) != 0)
    goto out;                   /* logged why */
  if (hf_tool_json)
    a = hf_j_arr ();
  else if (n == 0)
    printf ("%s has no clones\n", url);
  else
    printf ("%-9s %-10s %-30s %s\n", "STATE", "BASE", "CREATED (UTC)",
            "CLONE");
  for (i = 0; i < n; i++) {
    enum hf_clone_state st = hf_clone_reg_state
      (&cr[i], strncmp (url, "s3://", 5) == 0, &hf_tool_s3);
    bool orphan = st == HF_CLONE_GONE || st == HF_CLONE_REPLACED;
    bool gone = false;
    char ts[40];

    orphans += orphan;
    if (orphan && hf_tool_prune) {
      if (hf_clone_reg_delete (s, prefix, cr[i].clone_uuid) != 0)
        goto out;               /* logged why */
      gone = true;
      pruned++;
    }
    hf_history_format_time (cr[i].created_ns, ts, sizeof ts);
    if (a) {
      json_object *o = hf_j_obj ();

      hf_j_str (o, "url", cr[i].clone_url);
      hf_j_u64 (o, "base_seq", cr[i].base_seq);
      hf_j_str (o, "created", ts);
      hf_j_str (o, "state", hf_clone_state_name (st));
      hf_j_bool (o, "orphan", orphan);
      hf_j_bool (o, "pruned", gone);
      json_object_array_add (a, o);
    }
    else
      printf ("%-9s %-10" PRIu64 " %-30s %s%s\n",
              orphan ? "orphan" : hf_clone_state_name (st),
              cr[i].base_seq, ts, cr[i].clone_url,
              gone ? " (pruned: registration deleted)"
              : st == HF_CLONE_GONE ? " (gone: its descriptor is missing)"
              : st == HF_CLONE_REPLACED ? " (another volume is there now)"
              : "");
  }
  if (a) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "url", url);
    json_object_object_add (o, "clones", a);
    a = NULL;
    hf_j_u64 (o, "orphans", orphans);
    hf_j_u64 (o, "pruned", pruned);
    hf_j_print (o, stdout);
  }
  else if (orphans && !hf_tool_prune)
    printf ("%zu orphan registration(s) keep their base from gc: "
            "hyperfile children %s --prune removes them\n", orphans, url);
  else if (pruned)
    printf ("pruned %zu orphan registration(s)\n", pruned);
  ret = EXIT_SUCCESS;
 out:
  json_object_put (a);
  free (cr);
  hf_objstore_close (s);
  free (prefix);
  return ret;
}

static double hf_tool_flat_t0;

static void
hf_tool_flat_progress (void *opaque, uint64_t done, uint64_t total)
{
  uint64_t bs = *(const uint32_t *) opaque;

  hf_tool_progress ("flatten", done * bs, total * bs, hf_tool_flat_t0,
                    done == total);
}

/* Make a clone independent of its parent: every block and index node
 * its head reads from the parent is copied into its own segments
 * (hf_gc_flatten, through the writer: the lease is held), the
 * descriptor says it is flattened (the parent is then followed only
 * while it exists, for the older points), and the clone is unregistered
 * from the parent, whose gc then frees the base and which may be
 * deleted. */
int
hf_tool_flatten (int argc, char **argv)
{
  const char *url = argv[0];
  struct hf_gc_options go = { .cfg = &hf_tool_s3,
                              .progress = hf_tool_flat_progress };
  struct hf_gc_flatten_report rep;
  struct hf_volume_info vi;
  struct hf_objstore *s, *ps = NULL;
  struct hf_file *f;
  struct hf_vdesc d;
  char *prefix, *pprefix = NULL, key[HF_OBJSTORE_KEY_MAX + 1];
  uint8_t buf[HF_VD_SIZE];
  bool was_flat, unreg = false;
  int r, ret = EXIT_FAILURE;

  (void) argc;
  if ((r = hf_tool_store (url, &s, &prefix)) != 0)
    return r;
  if ((r = hf_vdesc_read (s, prefix, &d)) != 0) {
    ret = r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
    goto out;                   /* logged why */
  }
  if (!(d.flags & HF_VD_CLONE)) {
    fprintf (stderr, "hyperfile: flatten: %s is not a clone: it reads "
             "nothing from another volume\n", url);
    ret = EXIT_USAGE;
    goto out;
  }
  was_flat = d.flags & HF_VD_FLATTENED;
  if ((r = hf_tool_writer_open (url, s, prefix, HF_TOOL_W_BATCH, &f)) != 0) {
    ret = r;
    goto out;
  }
  hf_volume_get_info (hf_file_volume (f), &vi);
  go.opaque = &vi.block_size;
  hf_tool_flat_t0 = hf_tool_now ();
  /* The engine's: the public API has no flatten. */
  r = hf_gc_flatten (s, prefix, hf_file_volume (f), &go, &rep);
  if (hf_file_close (f) != 0 && r == 0)
    r = EIO;
  if (r)
    goto out;                   /* logged why */
  /* The descriptor last but one: from now on no point at or after
   * flat_seq needs the parent.  A plain PUT replaces it (an object PUT
   * is atomic: readers see the old or the new one). */
  if (!was_flat || rep.moved_blocks || rep.touched_nodes) {
    d.flags |= HF_VD_FLATTENED;
    d.flat_seq = rep.head_seq;
    hf_vdesc_encode (&d, buf);
    snprintf (key, sizeof key, "%svolume", prefix);
    r = hf_objstore_put_retry (s, key, buf, sizeof buf, 0);
    if (r) {
      fprintf (stderr, "hyperfile: flatten: %s: writing the descriptor: "
               "%s (the data is copied; run flatten again)\n", url,
               strerror (r));
      goto out;
    }
  }
  /* Then the parent's registration (its gc may free the base now). */
  hf_tool_held[0] = '\0';
  hf_tool_quiet = true;         /* a parent that is gone is fine */
  r = hf_objstore_open_url (d.parent_url, &hf_tool_s3, false, &ps,
                            &pprefix);
  hf_tool_quiet = false;
  if (r == 0)
    r = hf_clone_reg_delete (ps, pprefix, d.uuid);
  if (r == 0)
    unreg = true;
  else if (r != ENOENT)
    fprintf (stderr, "hyperfile: flatten: could not unregister the clone "
             "from %s: %s; it keeps the base until flatten runs again\n",
             d.parent_url, strerror (r));
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "url", url);
    hf_j_str (o, "parent", d.parent_url);
    hf_j_u64 (o, "moved_blocks", rep.moved_blocks);
    hf_j_u64 (o, "moved_bytes", rep.moved_blocks * vi.block_size);
    hf_j_u64 (o, "touched_nodes", rep.touched_nodes);
    hf_j_u64 (o, "flattened_at", d.flat_seq);
    hf_j_bool (o, "unregistered", unreg);
    hf_j_print (o, stdout);
  }
  else if (was_flat && rep.moved_blocks == 0 && rep.touched_nodes == 0)
    printf ("%s is already flattened at segment %" PRIu64 ": its head "
            "reads nothing from %s%s\n", url, d.flat_seq, d.parent_url,
            unreg ? " (registration removed)" : "");
  else
    printf ("flattened %s: %" PRIu64 " blocks (%" PRIu64 " bytes) and %"
            PRIu64 " index paths copied from %s into its own segments; "
            "head segment %" PRIu64 ".\n%s; points before segment %" PRIu64
            " still read from it while it exists.\n", url,
            rep.moved_blocks, rep.moved_blocks * vi.block_size,
            rep.touched_nodes, d.parent_url, d.flat_seq,
            unreg ? "Unregistered from the parent, which may be deleted now"
            : "The parent is gone", d.flat_seq);
  ret = EXIT_SUCCESS;
 out:
  hf_objstore_close (ps);
  free (pprefix);
  hf_objstore_close (s);
  free (prefix);
  return ret;
}
