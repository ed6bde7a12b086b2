namespace Billing.Invoices;

/// <summary>For how many invoices a coupon applies.</summary>
public enum CouponDuration
{
    /// <summary>The first invoice only.</summary>
    Once = 0,

    /// <summary>A fixed number of billing periods (<see cref="Coupon.DurationInPeriods"/>).</summary>
    Repeating = 1,

    /// <summary>Every invoice.</summary>
    Forever = 2,
}
