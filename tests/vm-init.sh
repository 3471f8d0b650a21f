#!/bin/busybox sh
# /init of the busybox initramfs that tests/test-nbd-vm.sh builds.  Loads
# the virtio block and ext4 drivers; with hfmode=write on the kernel
# command line it makes an ext2 file system on /dev/vda and writes files;
# with hfmode=read it only mounts it.  Either way it prints one
# "HFSUM checksum path" line per file and powers off.
/bin/busybox mkdir -p /proc /sys /dev /tmp /mnt
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do
  insmod "/lib/$m" || echo "HF: insmod $m failed"
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mode=$(sed -n 's/.*hfmode=\([a-z]*\).*/\1/p' /proc/cmdline)
echo "HF: mode $mode, disk $(cat /sys/block/vda/size) sectors"
if [ "$mode" = write ]; then
  mke2fs -q /dev/vda || echo "HF: mke2fs failed"
  mount -t ext2 /dev/vda /mnt || echo "HF: mount failed"
  dd if=/dev/urandom of=/mnt/data bs=1M count=4 2>/dev/null
  mkdir /mnt/d
  i=1
  while [ $i -le 20 ]; do
    dd if=/dev/urandom of=/mnt/d/f$i bs=$((i * 997)) count=1 2>/dev/null
    i=$((i + 1))
  done
  umount /mnt
  sync
  echo 3 > /proc/sys/vm/drop_caches
fi
mount -t ext2 -o ro /dev/vda /mnt || echo "HF: mount failed"
(cd /mnt && find . -type f | sort | while read -r f; do
  echo "HFSUM $(sha256sum < "$f" | cut -d' ' -f1) $f"
done)
umount /mnt
echo "HF: done"
poweroff -f
