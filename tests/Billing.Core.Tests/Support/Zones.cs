namespace Billing.Tests.Support;

/// <summary>IANA zones used by the period tests: DST in both hemispheres, half-hour and 45-minute offsets, 30-minute DST, date-line jumps.</summary>
internal static class Zones
{
    public static readonly string[] Ids =
    [
        "Etc/UTC", "Etc/GMT+12", "Etc/GMT-14",
        "America/New_York", "America/Chicago", "America/Denver", "America/Phoenix", "America/Los_Angeles",
        "America/Anchorage", "Pacific/Honolulu", "America/St_Johns", "America/Halifax", "America/Havana",
        "America/Mexico_City", "America/Bogota", "America/Caracas", "America/Sao_Paulo", "America/Santiago",
        "America/Asuncion", "America/Argentina/Buenos_Aires", "America/Nuuk", "America/Scoresbysund",
        "Atlantic/Azores", "Atlantic/Reykjavik", "Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Paris",
        "Europe/Berlin", "Europe/Helsinki", "Europe/Kyiv", "Europe/Chisinau", "Europe/Istanbul", "Europe/Moscow",
        "Africa/Casablanca", "Africa/Cairo", "Africa/Lagos", "Africa/Johannesburg", "Africa/Nairobi",
        "Asia/Jerusalem", "Asia/Gaza", "Asia/Beirut", "Asia/Tehran", "Asia/Dubai", "Asia/Kabul", "Asia/Karachi",
        "Asia/Kolkata", "Asia/Colombo", "Asia/Kathmandu", "Asia/Dhaka", "Asia/Yangon", "Asia/Bangkok",
        "Asia/Shanghai", "Asia/Tokyo", "Asia/Seoul", "Asia/Pyongyang", "Australia/Perth", "Australia/Eucla",
        "Australia/Darwin", "Australia/Adelaide", "Australia/Sydney", "Australia/Lord_Howe", "Antarctica/Troll",
        "Pacific/Auckland", "Pacific/Chatham", "Pacific/Apia", "Pacific/Fakaofo", "Pacific/Kwajalein",
        "Pacific/Kiritimati", "Pacific/Tongatapu", "Pacific/Marquesas", "Pacific/Norfolk",
    ];

    public static TimeZoneInfo Get(string id) =>
        TimeZoneInfo.TryFindSystemTimeZoneById(id, out var zone)
            ? zone
            : throw new InvalidOperationException($"Time zone '{id}' is missing: install the tzdata package (apt-get install tzdata).");
}
