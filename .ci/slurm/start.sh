#!/usr/bin/env bash
# Start a one-node SLURM (munge, MariaDB, slurmdbd, slurmctld, slurmd) on localhost.
# Idempotent: re-running restarts the daemons. Needs root and Debian's
# slurm-wlm, slurmdbd, munge and mariadb-server packages.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
conf=/etc/slurm
mkdir -p "$conf" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
sed -e "s/@CPUS@/$cpus/" -e "s/@MEM_MB@/$mem_mb/" "$here/slurm.conf" > "$conf/slurm.conf"
install -m 600 "$here/slurmdbd.conf" "$conf/slurmdbd.conf"

pkill -x slurmd || true; pkill -x slurmctld || true; pkill -x slurmdbd || true
sleep 1

# munge
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || su -s /bin/sh munge -c "/usr/sbin/munged" || /usr/sbin/munged --force
munge -n | unmunge >/dev/null

# MariaDB for accounting (sacct)
if ! pgrep -x mariadbd >/dev/null && ! pgrep -x mysqld >/dev/null; then
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    (mysqld_safe --user=mysql >/var/log/slurm/mysqld.log 2>&1 &)
fi
for _ in $(seq 60); do mysqladmin ping >/dev/null 2>&1 && break; sleep 1; done
mysql -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmci';
          GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

/usr/sbin/slurmdbd
for _ in $(seq 30); do sacctmgr -i show cluster >/dev/null 2>&1 && break; sleep 1; done
sacctmgr -i add cluster resstore >/dev/null 2>&1 || true
sacctmgr -i add account ci Cluster=resstore Description=ci Organization=ci >/dev/null 2>&1 || true
sacctmgr -i add user root Account=ci >/dev/null 2>&1 || true

/usr/sbin/slurmctld
/usr/sbin/slurmd
for _ in $(seq 30); do
    sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed|alloc" && break
    scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
    sleep 1
done
sinfo
