#!/usr/bin/env bash
# A qemu VM (software emulation) boots Debian's kernel with a busybox
# initramfs built here, its disk being the volume (-drive
# file=nbd:unix:SOCK,format=raw,if=virtio); it makes an ext2 file
# system, writes files and powers off.  After a server restart the host
# (e2fsck, debugfs) and a second boot read it all back.  Needs
# qemu-system-x86, busybox-static, linux-image-amd64 (and e2fsprogs).
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires nbdcopy --version
requires qemu-system-x86_64 --version
requires cpio --version
requires gzip --version
requires modinfo --version
requires e2fsck -V
requires debugfs -V
requires test -x /bin/busybox
requires sh -c '/bin/busybox --list | grep -qx insmod'
requires sh -c 'ls /boot/vmlinuz-* >/dev/null'
kernel="$(ls /boot/vmlinuz-* | sort -V | tail -1)"
kver="${kernel#/boot/vmlinuz-}"
requires test -r "$kernel"
requires test -d "/lib/modules/$kver"
hf_tmpdir

# The initramfs: busybox, /init, and virtio_blk and ext4 with their
# dependencies in load order (dependencies first).
root="$tmp/initramfs"
mkdir -p "$root/bin" "$root/lib"
cp /bin/busybox "$root/bin/busybox"
cp "$abs_srcdir/vm-init.sh" "$root/init"
chmod +x "$root/init"
: > "$root/modules.order"
add_module ()
{
  local m="$1" dep f
  grep -qx "$m.ko" "$root/modules.order" && return 0
  for dep in $(modinfo -k "$kver" -F depends "$m" | tr ',' ' '); do
    add_module "$dep"
  done
  f="$(modinfo -k "$kver" -n "$m")"
  case "$f" in
    *.ko) cp "$f" "$root/lib/$m.ko" ;;
    *.ko.xz) xz -dc "$f" > "$root/lib/$m.ko" ;;
    *.ko.zst) zstd -qdc "$f" > "$root/lib/$m.ko" ;;
    *) echo "$0: $m: unexpected module file $f"; exit 1 ;;
  esac
  echo "$m.ko" >> "$root/modules.order"
}
for m in virtio virtio_ring virtio_pci virtio_blk crc32c_generic ext4; do
  if modinfo -k "$kver" -n "$m" >/dev/null 2>&1; then
    add_module "$m"
  fi
done
cat "$root/modules.order"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$tmp/initrd.gz"

# boot MODE: run the VM on the volume; the console goes to $tmp/console.
boot ()
{
  rm -f "$tmp/console"
  timeout 300 qemu-system-x86_64 -accel tcg -m 256 -smp 1 \
    -display none -monitor none -serial "file:$tmp/console" -no-reboot \
    -kernel "$kernel" -initrd "$tmp/initrd.gz" \
    -append "console=ttyS0 panic=-1 quiet hfmode=$1" \
    -drive "file=nbd:unix:$sock,format=raw,if=virtio,cache=none"
  grep '^HF' "$tmp/console" | tr -d '\r'
  grep -q '^HF: done' "$tmp/console"
}
sums ()
{
  grep '^HFSUM ' "$tmp/console" | tr -d '\r'
}

hf_start "$tmp/vol" size=32M segment-size=1M
boot write
sums > "$tmp/sums.1"
[ "$(wc -l < "$tmp/sums.1")" -eq 21 ]
hf_stop TERM

# The host sees a clean file system with the same files.
hf_start "$tmp/vol"
nbdcopy "$uri" "$tmp/disk.img"
e2fsck -fn "$tmp/disk.img"
[ "$(debugfs -R 'cat /data' "$tmp/disk.img" 2>/dev/null | sha256sum |
    awk '{ print $1 }')" = "$(awk '$3 == "./data" { print $2 }' "$tmp/sums.1")" ]
rm -f "$tmp/disk.img"
boot read
sums > "$tmp/sums.2"
cmp "$tmp/sums.1" "$tmp/sums.2"
hf_stop TERM
echo "$0: ok"
