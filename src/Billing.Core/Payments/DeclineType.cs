namespace Billing.Payments;

/// <summary>Whether a decline may succeed on a later retry.</summary>
public enum DeclineType
{
    /// <summary>May succeed later (insufficient funds, generic decline): dunning retries.</summary>
    Soft = 0,

    /// <summary>Will not succeed (fraud, stolen or closed card): dunning does not retry.</summary>
    Hard = 1,
}
