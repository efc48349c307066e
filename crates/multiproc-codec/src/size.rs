/// Formats a byte count for error messages: `"512 bytes"`, `"64 KiB"`, `"70 MiB"`, `"1.5 GiB"`.
pub fn human_size(bytes: usize) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if (v - v.round()).abs() < 0.05 {
        format!("{} {}", v.round() as u64, UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn formats() {
        assert_eq!(human_size(10), "10 bytes");
        assert_eq!(human_size(64 << 20), "64 MiB");
        assert_eq!(human_size(70 << 20), "70 MiB");
        assert_eq!(human_size(3 << 29), "1.5 GiB");
    }
}
