"""Raspberry Pi (4, Raspberry Pi OS): SoC temperature, ARM clock, and the firmware's throttling flags.

Each tick reads two sysfs files (cheap). ``vcgencmd get_throttled`` is a fork+exec and a mailbox call to the
firmware, so it runs at most once per ``throttled_interval_s`` (1 s by default) and its rows appear only on the
ticks where it ran. vcgencmd needs /dev/vcio, i.e. membership of the ``video`` group; without it the source still
reports sysfs values and its probe reason says why the flags are missing.

``get_throttled`` bits (Raspberry Pi firmware documentation, "vcgencmd get_throttled"):

====  ==========================================
bit   meaning
====  ==========================================
0     under-voltage detected (now)
1     ARM frequency capped (now)
2     currently throttled
3     soft temperature limit active
16    under-voltage has occurred since boot
17    ARM frequency capping has occurred
18    throttling has occurred
19    soft temperature limit has occurred
====  ==========================================

On a Raspberry Pi 5, ``vcgencmd pmic_read_adc`` reads the PMIC's ADC: one line per rail and quantity,
``  VDD_CORE_A current(7)=0.75012000A`` and ``  VDD_CORE_V volt(15)=0.86173300V`` (the numbers in brackets are ADC
channels, not rails: a rail's current and voltage are paired by its name). ``EXT5V_V`` (the 5 V input) and ``BATT_V``
have a voltage but no current, so the sum of rail powers leaves out the 5 V input's own losses and what USB devices
draw: it is the board's rails, not the wall. Earlier Pis have no such ADC (the command fails there).

Raspberry Pi OS ships with the memory cgroup controller disabled (``cgroup_disable=memory`` on the kernel command
line), which stops edgeprof from capping a worker's memory; ``memory_cgroup_disabled`` detects it and names the fix.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable

from .base import HeldFile, Row, Source, hold, read_text

DEVICE_TREE_MODEL_PATH = "/proc/device-tree/model"
THERMAL_ZONE0_TEMP_PATH = "/sys/class/thermal/thermal_zone0/temp"
CPU0_CUR_FREQ_PATH = "/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"
PROC_CMDLINE_PATH = "/proc/cmdline"
PROC_CGROUPS_PATH = "/proc/cgroups"

MEMORY_CGROUP_FIX = (
    "the memory cgroup controller is disabled: add `cgroup_enable=memory cgroup_memory=1` to "
    "/boot/firmware/cmdline.txt and reboot"
)

THROTTLE_BITS: dict[int, str] = {
    0: "under_voltage_now",
    1: "freq_capped_now",
    2: "throttled_now",
    3: "soft_temp_limit_now",
    16: "under_voltage_occurred",
    17: "freq_capped_occurred",
    18: "throttled_occurred",
    19: "soft_temp_limit_occurred",
}

Runner = Callable[[list[str]], str]


# ---------- pure parsers ----------


def parse_throttled(text: str) -> int | None:
    """'throttled=0x50005' -> 0x50005."""
    m = re.search(r"throttled=(0x[0-9a-fA-F]+|\d+)", text)
    return int(m.group(1), 0) if m else None


def decode_throttled(value: int) -> dict[str, bool]:
    """0x50005 -> {'under_voltage_now': True, 'freq_capped_now': False, 'throttled_now': True, ...}."""
    return {name: bool(value >> bit & 1) for bit, name in THROTTLE_BITS.items()}


def parse_measure_temp(text: str) -> float | None:
    """``temp=48.3'C`` -> 48.3."""
    m = re.search(r"temp=(-?[0-9.]+)", text)
    return float(m.group(1)) if m else None


def parse_measure_clock(text: str) -> float | None:
    """'frequency(48)=1500398464' -> 1500398464.0 (Hz)."""
    m = re.search(r"frequency\(\d+\)=(\d+)", text)
    return float(m.group(1)) if m else None


_PMIC_LINE = re.compile(r"^\s*(?P<rail>\S+)_(?P<kind>[AV])\s+(?:current|volt)\(\d+\)=(?P<value>[-+0-9.eE]+|nan)[AV]\s*$")


def parse_pmic_adc(text: str) -> dict[str, dict[str, float]]:
    """``vcgencmd pmic_read_adc`` -> {rail: {"A": amperes, "V": volts}}; a value that is not a number is left out."""
    rails: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        m = _PMIC_LINE.match(line)
        if not m:
            continue
        try:
            value = float(m["value"])
        except ValueError:
            continue
        if value == value:  # not nan
            rails.setdefault(m["rail"], {})[m["kind"]] = value
    return rails


def pmic_power_w(rails: dict[str, dict[str, float]]) -> dict[str, float]:
    """Watts per rail that has both a current and a voltage, and their sum under ``"total"`` (empty when none has)."""
    out = {rail: q["A"] * q["V"] for rail, q in rails.items() if "A" in q and "V" in q}
    if out:
        out["total"] = sum(out.values())
    return out


def parse_model(raw: str | None) -> str | None:
    """The device-tree model string without its trailing NUL."""
    if not raw:
        return None
    return raw.replace("\x00", "").strip() or None


def is_raspberry_pi(model_path: str = DEVICE_TREE_MODEL_PATH) -> bool:
    return (parse_model(read_text(model_path)) or "").startswith("Raspberry Pi")


def memory_cgroup_disabled(cmdline_path: str = PROC_CMDLINE_PATH, cgroups_path: str = PROC_CGROUPS_PATH) -> str | None:
    """The fix sentence when the memory cgroup controller is disabled, else None.

    /proc/cgroups is the authority (columns: subsys_name hierarchy num_cgroups enabled). When it cannot be read
    or lists no memory controller, the kernel command line decides: Raspberry Pi kernels honour the last of
    ``cgroup_disable=memory`` / ``cgroup_enable=memory``.
    """
    cgroups = read_text(cgroups_path)
    if cgroups:
        for line in cgroups.splitlines():
            fields = line.split()
            if len(fields) >= 4 and fields[0] == "memory":
                return MEMORY_CGROUP_FIX if fields[3] == "0" else None
    cmdline = read_text(cmdline_path) or ""
    state = None
    for token in cmdline.split():
        key, _, value = token.partition("=")
        if key in ("cgroup_disable", "cgroup_enable") and "memory" in value.split(","):
            state = key
    return MEMORY_CGROUP_FIX if state == "cgroup_disable" else None


def run_command(args: list[str], timeout: float = 2.0) -> str:
    """Run a command without a shell and return its stdout; raises OSError / CalledProcessError / TimeoutExpired."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=True)
    return done.stdout


# ---------- source ----------


class RpiSource(Source):
    """SoC temperature and ARM clock from sysfs every tick; vcgencmd throttling flags at most once a second; on a Pi 5
    the PMIC's rail powers (``power.pmic_total_w``, ``power.pmic_vdd_core_w``) at most every ``pmic_interval_s``."""

    name = "rpi"
    measures = ("cpu", "board")

    def __init__(
        self,
        model_path: str = DEVICE_TREE_MODEL_PATH,
        temp_path: str = THERMAL_ZONE0_TEMP_PATH,
        cur_freq_path: str = CPU0_CUR_FREQ_PATH,
        runner: Runner | None = None,
        vcgencmd: str = "vcgencmd",
        throttled_interval_s: float = 1.0,
        pmic_interval_s: float = 0.5,
    ):
        super().__init__()
        self.model_path = model_path
        self.temp_path = temp_path
        self.cur_freq_path = cur_freq_path
        self.runner: Runner = runner or run_command
        self.vcgencmd = vcgencmd
        self.throttled_interval_s = throttled_interval_s
        self.pmic_interval_s = pmic_interval_s
        self._pmic = False
        self._last_pmic: float | None = None
        self.model: str | None = None
        self._vc: str | None = None  # resolved vcgencmd path when usable
        self._temp: HeldFile | None = None  # sysfs files held open from probe on
        self._freq: HeldFile | None = None
        self._last_throttled: float | None = None

    def _vcgencmd(self, *args: str) -> str:
        assert self._vc is not None
        return self.runner([self._vc, *args])

    def _probe(self) -> tuple[bool, str]:
        self.model = parse_model(read_text(self.model_path))
        if not (self.model or "").startswith("Raspberry Pi"):
            return False, f"not a Raspberry Pi (device-tree model: {self.model or 'none'})"
        self._temp = hold(self.temp_path)
        if self._temp is not None and self._temp.number() is None:
            self._temp = None
        self._freq = hold(self.cur_freq_path)
        if self._freq is not None and self._freq.number() is None:
            self._freq = None
        vc_note = ""
        candidate = self.vcgencmd if self.runner is not run_command else shutil.which(self.vcgencmd)
        if candidate is None:
            vc_note = "vcgencmd not found, no throttling flags"
        else:
            self._vc = candidate
            try:
                if parse_throttled(self._vcgencmd("get_throttled")) is None:
                    raise ValueError("unexpected get_throttled output")
                vc_note = "vcgencmd get_throttled ok"
            except (OSError, ValueError, subprocess.SubprocessError) as exc:
                self._vc = None
                vc_note = f"vcgencmd failed ({exc}); add the user to the video group for throttling flags"
            if self._vc is not None:
                try:
                    self._pmic = "total" in pmic_power_w(parse_pmic_adc(self._vcgencmd("pmic_read_adc")))
                except (OSError, subprocess.SubprocessError):
                    self._pmic = False
                vc_note += ", PMIC rail power" if self._pmic else ", no PMIC ADC (a Pi 5 has one: no power figures)"
        found = [name for name, ok in (("sysfs temp", self._temp), ("sysfs cpufreq", self._freq)) if ok]
        return True, f"{self.model}; {', '.join(found + [vc_note])}"

    def read(self, worker_pid: int | None = None) -> list[Row]:
        rows: list[Row] = []
        if self._temp is not None:
            temp = self._temp.number(0.001)  # millidegrees -> C
            if temp is not None:
                rows.append(("temp.soc_c", temp, "C"))
        if self._freq is not None:
            freq = self._freq.number(0.001)  # kHz -> MHz
            if freq is not None:
                rows.append(("cpu.arm_freq_mhz", freq, "MHz"))
        now = time.monotonic()
        if self._vc is not None and (self._last_throttled is None or now - self._last_throttled >= self.throttled_interval_s):
            self._last_throttled = now
            rows.extend(self._vc_rows())
        if self._pmic and (self._last_pmic is None or now - self._last_pmic >= self.pmic_interval_s):
            self._last_pmic = now
            try:
                watts = pmic_power_w(parse_pmic_adc(self._vcgencmd("pmic_read_adc")))
            except (OSError, subprocess.SubprocessError):
                watts = {}
            if "total" in watts:
                rows.append(("power.pmic_total_w", watts["total"], "W"))
            if "VDD_CORE" in watts:
                rows.append(("power.pmic_vdd_core_w", watts["VDD_CORE"], "W"))
        return rows

    def close(self) -> None:
        for held in (self._temp, self._freq):
            if held is not None:
                held.close()
        self._temp = self._freq = None

    def _vc_rows(self) -> list[Row]:
        rows: list[Row] = []
        try:
            value = parse_throttled(self._vcgencmd("get_throttled"))
            if value is not None:
                # the raw word is not a "throttle.*" metric: only the decoded bits are 0/1 flags
                rows.append(("throttle_flags", float(value), "flags"))
                rows.extend((f"throttle.{name}", float(on), "bool") for name, on in decode_throttled(value).items())
            if self._temp is None:
                temp = parse_measure_temp(self._vcgencmd("measure_temp"))
                if temp is not None:
                    rows.append(("temp.soc_c", temp, "C"))
            if self._freq is None:
                hz = parse_measure_clock(self._vcgencmd("measure_clock", "arm"))
                if hz is not None:
                    rows.append(("cpu.arm_freq_mhz", hz / 1e6, "MHz"))
        except (OSError, subprocess.SubprocessError):
            pass  # a failed call leaves these metrics out of this tick
        return rows
