namespace Billing.Periods;

/// <summary>The calendar unit of a <see cref="BillingInterval"/>.</summary>
public enum BillingIntervalUnit
{
    /// <summary>Calendar days on the customer's local calendar (not 24-hour spans: a DST day is 23 or 25 hours).</summary>
    Day = 0,

    /// <summary>Seven calendar days.</summary>
    Week = 1,

    /// <summary>Calendar months, with month-end clamping.</summary>
    Month = 2,

    /// <summary>Twelve calendar months (a yearly anchor of 29 February falls on 28 February in common years).</summary>
    Year = 3,
}
